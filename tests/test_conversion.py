# SPDX-License-Identifier: Apache-2.0
"""Checkpoint conversion (issue 8): open_clip's OpenAI-architecture CLIP is the peer implementation.

A tiny open_clip model (QuickGELU, like OpenAI's) with perturbed weights is saved as-is, as a TorchScript archive, as
safetensors and re-packed in the authors' MAXI layout; each conversion must reproduce open_clip's `encode_image` /
`encode_text` within 1e-4 in float32.
"""

import builtins
import json
import pickle
import sys
import types
import warnings
from collections import OrderedDict

import numpy as np
import open_clip
import pytest
import torch
from huggingface_hub import ModelCard
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from transformers import AutoModel, AutoProcessor, CLIPConfig, CLIPModel

import modeling_maxi  # noqa: F401  (registers the Auto classes)
from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor, zero_shot_classify
from modeling_maxi.conversion import (
    REPORT_FILE_NAME,
    CorruptCheckpointError,
    ShapeMismatchError,
    UnexpectedKeysError,
    UnknownLayoutError,
    UnsafeCheckpointError,
    convert_checkpoint,
    detect_layout,
    extract_state_dict,
    load_checkpoint_file,
    map_state_dict,
)
from tests.helpers.tiny_models import save_tiny_model

TOKEN_EMBEDDING = "text_model.embeddings.token_embedding.weight"
EOT = 49407


def _tiny_open_clip(seed: int = 1, layers: int = 2):
    """open_clip CLIP with the tiny test config's architecture; every tensor perturbed so that LayerNorms, biases and
    the logit scale are not at their (symmetric) initial values and a mis-mapped tensor changes the outputs."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=layers, width=32, head_width=16, mlp_ratio=2.0, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=layers, mlp_ratio=2.0),
        quick_gelu=True,
    ).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def _authors_container(open_clip_state, fake_config):
    """The authors' `torch.save` container: DDP prefix, image_encoder/text_encoder, prompt-learner buffers, no token
    embedding, plus optimizer / scheduler state and their yacs config."""
    model_state = OrderedDict()
    for key, value in open_clip_state.items():
        if key.startswith("visual."):
            model_state["module.image_encoder." + key[len("visual.") :]] = value.clone()
        elif key == "logit_scale":
            model_state["module.logit_scale"] = value.clone()
        elif key != "token_embedding.weight":
            model_state["module.text_encoder." + key] = value.clone()
    model_state["module.prompt_learner.token_prefix"] = torch.randn(400, 1, 32)
    model_state["module.prompt_learner.token_suffix"] = torch.randn(400, 72, 32)
    model_state["module.prompt_learner.complete_text_embeddings"] = torch.randn(400, 77, 32)
    return {
        "model": model_state,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5, "params": [0]}]},
        "lr_scheduler": {"last_epoch": 9},
        "max_accuracy": 77.5,
        "epoch": 9,
        "config": fake_config,
    }


class _FakeCfgNode(dict):
    """Pickles exactly like yacs' CfgNode (a dict subclass with attributes in `__dict__`)."""

    constructed = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).constructed += 1
        self.__dict__["__immutable__"] = True
        self.__dict__["__new_allowed__"] = False


@pytest.fixture(scope="module")
def peer():
    return _tiny_open_clip()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("conversion_base"), seed=7)


@pytest.fixture(scope="module")
def base_model(base_dir):
    return MaxiVideoCLIPModel.from_pretrained(base_dir).eval()


@pytest.fixture(scope="module")
def openai_checkpoint(peer, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "openai_state_dict.pt"
    torch.save(peer.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def authors_checkpoint(peer, tmp_path_factory):
    module = types.ModuleType("yacs.config")
    module.CfgNode = _FakeCfgNode
    package = types.ModuleType("yacs")
    package.config = module
    previous = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
    original_names = _FakeCfgNode.__module__, _FakeCfgNode.__qualname__
    _FakeCfgNode.__module__, _FakeCfgNode.__qualname__ = "yacs.config", "CfgNode"
    sys.modules["yacs"], sys.modules["yacs.config"] = package, module
    try:
        config = _FakeCfgNode({"MODEL": _FakeCfgNode({"ARCH": "ViT-B/16"}), "DATA": _FakeCfgNode({"NUM_FRAMES": 16})})
        path = tmp_path_factory.mktemp("ckpt") / "maxi_best.pth"
        torch.save(_authors_container(peer.state_dict(), config), path)
    finally:
        _FakeCfgNode.__module__, _FakeCfgNode.__qualname__ = original_names
        for name, value in previous.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    _FakeCfgNode.constructed = 0
    return path


def _inputs(seed: int = 3):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(3, 3, 32, 32, generator=generator)
    lengths = [5, 9, 77]
    input_ids = torch.zeros(3, 77, dtype=torch.long)  # open_clip pads with 0 after the end-of-text token
    attention_mask = torch.zeros(3, 77, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(1, EOT - 1, (length,), generator=generator)
        input_ids[row, 0] = EOT - 1  # start-of-text
        input_ids[row, length - 1] = EOT
        attention_mask[row, :length] = 1
    return images, input_ids, attention_mask


def _assert_matches_peer(model, peer):
    images, input_ids, attention_mask = _inputs()
    with torch.no_grad():
        expected_image = peer.encode_image(images)
        expected_text = peer.encode_text(input_ids)
        video = model.get_video_features(pixel_values=images.unsqueeze(1))
        text = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    assert video.frame_embeds.shape == (3, 1, 16)
    torch.testing.assert_close(video.frame_embeds[:, 0], expected_image, atol=1e-4, rtol=0)
    torch.testing.assert_close(video.pooler_output, expected_image, atol=1e-4, rtol=0)
    torch.testing.assert_close(text, expected_text, atol=1e-4, rtol=0)
    torch.testing.assert_close(model.logit_scale.detach(), peer.logit_scale.detach())


def test_openai_state_dict_matches_open_clip(openai_checkpoint, peer, base_dir, base_model):
    model, report = convert_checkpoint(openai_checkpoint, base=base_dir)
    _assert_matches_peer(model, peer)
    assert report.layout == "openai" and report.checkpoint_format == "torch"
    # Every tensor of the model comes from the checkpoint; nothing was taken from the base.
    assert set(report.from_checkpoint) == set(model.state_dict())
    assert report.from_base == [] and report.initialised == [] and report.ignored == {}
    assert report.from_checkpoint["vision_model.encoder.layers.1.self_attn.k_proj.weight"] == (
        "visual.transformer.resblocks.1.attn.in_proj_weight[k]"
    )
    assert report.from_checkpoint["visual_projection.weight"] == "visual.proj.T"
    assert not torch.equal(model.state_dict()[TOKEN_EMBEDDING], base_model.state_dict()[TOKEN_EMBEDDING])


def test_authors_layout_matches_open_clip_with_base_token_embedding(authors_checkpoint, peer, base_dir, base_model):
    model, report = convert_checkpoint(authors_checkpoint, base=base_dir)
    assert report.layout == "maxi"
    # The token embedding is not in the authors' checkpoint: it comes from the base, unchanged.
    assert report.from_base == [TOKEN_EMBEDDING]
    assert torch.equal(model.state_dict()[TOKEN_EMBEDDING], base_model.state_dict()[TOKEN_EMBEDDING])
    assert set(report.ignored) == {
        "prompt_learner.token_prefix",
        "prompt_learner.token_suffix",
        "prompt_learner.complete_text_embeddings",
    }
    assert report.from_checkpoint["text_projection.weight"] == "text_encoder.text_projection.T"
    assert len(report.from_checkpoint) == len(model.state_dict()) - 1
    # The authors' model used the original CLIP's token embedding: give the peer the base's and compare.
    reference = _tiny_open_clip()
    with torch.no_grad():
        reference.token_embedding.weight.copy_(base_model.state_dict()[TOKEN_EMBEDDING])
    _assert_matches_peer(model, reference)


def test_authors_container_metadata_is_loaded_inertly(authors_checkpoint):
    yacs_imported_before = "yacs.config" in sys.modules
    obj, file_format = load_checkpoint_file(authors_checkpoint)
    assert file_format == "torch"
    assert ("yacs.config" in sys.modules) == yacs_imported_before  # the class was not imported
    assert _FakeCfgNode.constructed == 0  # the pickled class's code never ran
    assert type(obj["config"]) is OrderedDict and obj["config"]["MODEL"]["ARCH"] == "ViT-B/16"
    assert obj["epoch"] == 9
    state_dict = extract_state_dict(obj)
    assert "image_encoder.conv1.weight" in state_dict and not any(k.startswith("module.") for k in state_dict)


def test_torchscript_and_safetensors_match_open_clip(peer, base_dir, tmp_path):
    from safetensors.torch import save_file

    images, input_ids, _ = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            peer, {"encode_image": (images,), "encode_text": (input_ids,)}, check_trace=False
        )
    torchscript_path = tmp_path / "ViT-tiny.pt"
    traced.save(str(torchscript_path))
    model, report = convert_checkpoint(torchscript_path, base=base_dir)
    assert report.checkpoint_format == "torchscript" and report.layout == "openai"
    assert "attn_mask" in report.ignored  # the traced causal-mask buffer is not a weight
    _assert_matches_peer(model, peer)

    safetensors_path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(safetensors_path))
    model, report = convert_checkpoint(safetensors_path, base=base_dir)
    assert report.checkpoint_format == "safetensors"
    _assert_matches_peer(model, peer)

    # OpenAI's release: float16 weights plus scalar metadata entries in the state dict.
    half_state = {k: v.half().contiguous() for k, v in peer.state_dict().items()}
    half_state.update(
        input_resolution=torch.tensor(32), context_length=torch.tensor(77), vocab_size=torch.tensor(49408)
    )
    half_path = tmp_path / "openai_fp16.safetensors"
    save_file(half_state, str(half_path))
    model, report = convert_checkpoint(half_path, base=base_dir)
    assert set(report.ignored) == {"input_resolution", "context_length", "vocab_size"}
    assert model.visual_projection.weight.dtype == torch.float32
    assert torch.equal(model.visual_projection.weight, half_state["visual.proj"].float().t())


def test_ensemble_ratio_mixes_checkpoint_with_base(authors_checkpoint, base_dir, base_model):
    plain, _ = convert_checkpoint(authors_checkpoint, base=base_dir)
    mixed, report = convert_checkpoint(authors_checkpoint, base=base_dir, ensemble_ratio=0.25)
    assert report.ensemble_ratio == 0.25
    plain_state, mixed_state, base_state = plain.state_dict(), mixed.state_dict(), base_model.state_dict()
    for name in report.from_checkpoint:
        expected = 0.25 * base_state[name] + 0.75 * plain_state[name]
        torch.testing.assert_close(mixed_state[name], expected, atol=1e-6, rtol=1e-6)
    # A checkpoint tensor really moved towards the base, and the base-filled token embedding did not move at all.
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    assert (mixed_state[name] - plain_state[name]).abs().max() > 1e-3
    assert torch.equal(mixed_state[TOKEN_EMBEDDING], base_state[TOKEN_EMBEDDING])
    with pytest.raises(ValueError, match=r"ensemble_ratio must be in \[0, 1\].*1\.5"):
        convert_checkpoint(authors_checkpoint, base=base_dir, ensemble_ratio=1.5)


class _CodeExecutingPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("container", ["zip", "legacy", "plain_pickle"])
def test_code_executing_pickle_is_refused_and_not_run(container, tmp_path):
    marker = tmp_path / "marker"
    payload = {"model": {"visual.proj": torch.zeros(2, 2)}, "hook": _CodeExecutingPayload(marker)}
    path = tmp_path / "evil.pth"
    if container == "plain_pickle":
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=4)
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=container == "zip")
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*builtins\.exec.*Nothing from the file"):
        load_checkpoint_file(path)
    assert not marker.exists()


def test_corrupt_files_have_their_own_message(openai_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(openai_checkpoint.read_bytes()[: openai_checkpoint.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="truncated.pt.*corrupt"):
        load_checkpoint_file(truncated)
    with pytest.raises(CorruptCheckpointError, match="garbage.pt.*not a readable PyTorch checkpoint"):
        load_checkpoint_file(garbage)
    with pytest.raises(CorruptCheckpointError, match="empty"):
        load_checkpoint_file(empty)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint_file(tmp_path / "missing.pt")


def test_wrong_layouts_have_their_own_message(base_dir, tmp_path):
    resnet = {"conv1.weight": torch.zeros(8, 3, 3, 3), "layer1.0.conv1.weight": torch.zeros(8, 8, 1, 1)}
    with pytest.raises(UnknownLayoutError, match=r"Unrecognised checkpoint layout.*'conv1.weight'"):
        detect_layout(resnet)
    clip_resnet = {
        "visual.layer1.0.conv1.weight": torch.zeros(8, 8, 1, 1),
        "visual.attnpool.positional_embedding": torch.zeros(50, 8),
        "token_embedding.weight": torch.zeros(10, 8),
    }
    with pytest.raises(UnknownLayoutError, match="ResNet"):
        detect_layout(clip_resnet)
    with pytest.raises(UnknownLayoutError, match="top-level keys are.*'epoch'"):
        extract_state_dict({"epoch": 3, "optimizer": {}})
    path = tmp_path / "resnet.pt"
    torch.save({"state_dict": resnet}, path)
    with pytest.raises(UnknownLayoutError, match="Unrecognised checkpoint layout"):
        convert_checkpoint(path, base=base_dir)


def _clip_shapes(**vision_overrides):
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    vision.update({"image_size": 32, "patch_size": 8, **vision_overrides})
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    with torch.device("meta"):
        return {k: v.shape for k, v in CLIPModel(config).state_dict().items()}


def test_shape_mismatch_and_unexpected_tensors(peer, base_dir, tmp_path):
    state = peer.state_dict()
    assert len(map_state_dict(state, _clip_shapes()).tensors) == len(_clip_shapes())
    # A base with another patch size: every affected tensor is named with both shapes.
    with pytest.raises(
        ShapeMismatchError,
        match=r"visual.conv1.weight -> .*patch_embedding.weight: checkpoint "
        r"\(32, 3, 8, 8\), model \(32, 3, 16, 16\)",
    ):
        map_state_dict(state, _clip_shapes(patch_size=16))
    # A deeper checkpoint than the base.
    deeper = _tiny_open_clip(layers=3).state_dict()
    with pytest.raises(UnexpectedKeysError, match=r"has 3 vision / 3 text layers, the base config 2 vision / 2"):
        map_state_dict(deeper, _clip_shapes())
    # A fork's extra module is refused, unless the user asks to ignore it.
    extra = {**state, "visual.temporal_adapter.weight": torch.zeros(4)}
    with pytest.raises(UnexpectedKeysError, match=r"no counterpart.*visual.temporal_adapter.weight.*--ignore_keys"):
        map_state_dict(extra, _clip_shapes())
    mapped = map_state_dict(extra, _clip_shapes(), ignore_patterns=[r"temporal_adapter"])
    assert mapped.ignored == {"visual.temporal_adapter.weight": "matched a user ignore pattern"}
    # The same mismatch through the full conversion, with a real saved base of another architecture.
    other_base = save_tiny_model(tmp_path / "other_base", vision_config={"patch_size": 16})
    path = tmp_path / "state.pt"
    torch.save(state, path)
    with pytest.raises(ShapeMismatchError, match="must match the checkpoint's"):
        convert_checkpoint(path, base=other_base)


def test_cli_writes_hub_ready_folder(authors_checkpoint, base_dir, base_model, tmp_path):
    from training.convert_checkpoint import main

    output_dir = tmp_path / "maxi-tiny"
    argv = ["--checkpoint", str(authors_checkpoint), "--base", str(base_dir), "--output-dir", str(output_dir)]
    main(argv + ["--ensemble-ratio", "0.2", "--num-frames", "4"])
    files = {p.name for p in output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", REPORT_FILE_NAME, "processor_config.json"} <= files
    assert not {name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_maxi_video_clip.MaxiVideoCLIPModel"
    assert json.loads((output_dir / "processor_config.json").read_text())["video_processor"]["num_frames"] == 4
    assert json.loads((output_dir / "video_preprocessor_config.json").read_text())["num_frames"] == 4
    report = json.loads((output_dir / REPORT_FILE_NAME).read_text())
    assert report["from_base"] == [TOKEN_EMBEDDING] and report["ensemble_ratio"] == 0.2
    assert report["summary"]["num_from_checkpoint"] == len(base_model.state_dict()) - 1
    card = (output_dir / "README.md").read_text()
    meta = ModelCard.load(output_dir / "README.md").data
    assert meta.library_name == "transformers" and meta.license == "other" and "# maxi-tiny" in card
    assert meta.base_model is None and "a local folder `" + base_dir.name + "`" in card  # a local base is named only
    for pushed in (output_dir / "README.md", output_dir / REPORT_FILE_NAME):  # no path of this machine is pushed
        text = pushed.read_text()
        assert str(base_dir) not in text and str(authors_checkpoint.parent) not in text, pushed.name
    assert report["checkpoint"] == authors_checkpoint.name and report["base"] == "local:" + base_dir.name
    assert report["checkpoint_sha256"] in card and "authors' released checkpoint" in card
    assert "`0.2 x base + 0.8 x checkpoint`" in card and "`num_frames=4`" in card
    assert "These are the authors' numbers" in card and "| UCF101 | top-1 (3 splits) | 78.2 ± 0.8 |" in card

    model = AutoModel.from_pretrained(output_dir).eval()
    processor = AutoProcessor.from_pretrained(output_dir)
    assert isinstance(model, MaxiVideoCLIPModel) and isinstance(processor, MaxiVideoProcessor)
    assert processor.num_frames == 4
    expected, _ = convert_checkpoint(authors_checkpoint, base=base_dir, ensemble_ratio=0.2)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    frames = np.random.default_rng(0).integers(0, 256, (8, 40, 48, 3), dtype=np.uint8)
    scores = zero_shot_classify(model, processor, frames, ["juggling", "surfing", "cooking"])
    assert sorted(s["label"] for s in scores) == ["cooking", "juggling", "surfing"]
    assert abs(sum(s["score"] for s in scores) - 1.0) < 1e-5


def test_cli_rejects_bad_arguments(authors_checkpoint, base_dir, tmp_path):
    from training.convert_checkpoint import main

    argv = ["--checkpoint", str(authors_checkpoint), "--base", str(base_dir), "--output_dir", str(tmp_path / "o")]
    with pytest.raises(ValueError, match=r"--ensemble_ratio must be in \[0, 1\], got -0.1"):
        main(argv + ["--ensemble_ratio", "-0.1"])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        main(["--checkpoint", str(tmp_path / "nope.pth"), "--output_dir", str(tmp_path / "o")])


def test_half_precision_base_keeps_checkpoint_precision(openai_checkpoint, peer, base_model, tmp_path):
    half_base = tmp_path / "half_base"
    base_model.half().save_pretrained(half_base)
    base_model.float()
    model, _ = convert_checkpoint(openai_checkpoint, base=half_base)
    assert next(model.parameters()).dtype == torch.float32
    _assert_matches_peer(model, peer)
    with pytest.raises(ValueError, match=r"Unknown video settings \['num_frame'\]"):
        convert_checkpoint(openai_checkpoint, base=half_base, num_frame=8)
    # The number of frames is the processor's: the model conversion refuses it and says where it goes.
    with pytest.raises(ValueError, match=r"num_frames=8 is not a model setting.*build_processor_from_base"):
        convert_checkpoint(openai_checkpoint, base=half_base, num_frames=8)


def test_push_to_hub_uploads_the_folder(monkeypatch, tmp_path):
    import huggingface_hub

    from modeling_maxi.conversion import push_converted_to_hub

    calls = []

    class _RecordingApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return types.SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc")

    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    folder = tmp_path / "converted"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        push_converted_to_hub(folder, "user/maxi-vitb16")
    (folder / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="repo_id must look like 'namespace/name', got 'maxi-vitb16'"):
        push_converted_to_hub(folder, "maxi-vitb16")
    url = push_converted_to_hub(folder, "user/maxi-vitb16", private=True, token="hf_x")
    assert url == "https://huggingface.co/user/maxi-vitb16/commit/abc"
    assert calls[0] == ("init", "hf_x")
    assert calls[1] == ("create_repo", "user/maxi-vitb16", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls[2][1]["folder_path"] == folder and calls[2][1]["repo_id"] == "user/maxi-vitb16"


def test_model_card_keeps_provenance_and_names_a_hub_base(authors_checkpoint, base_dir):
    """The card comes from the package's own template (no repository checkout needed); a Hub base is its metadata."""
    from dataclasses import replace

    from modeling_maxi.conversion import render_conversion_model_card

    _, report = convert_checkpoint(authors_checkpoint, base=base_dir)
    card = render_conversion_model_card(report, model_id="user/maxi-tiny")
    assert "# user/maxi-tiny" in card and report.checkpoint_sha256 in card
    assert "1 from the base" in card and "No weight-space ensembling" in card
    assert "| HMDB51 | top-1 (3 splits) | 52.2 ± 0.6 |" in card and "@inproceedings{lin2023match" in card
    hub_based = render_conversion_model_card(replace(report, base="openai/clip-vit-base-patch16"), model_id="m")
    assert "base_model: openai/clip-vit-base-patch16" in hub_based and "`openai/clip-vit-base-patch16`" in hub_based
