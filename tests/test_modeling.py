# SPDX-License-Identifier: Apache-2.0
"""MaxiVideoCLIPConfig / MaxiVideoCLIPModel: CLIP equivalence, pooling, cross-frame attention, loading."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from torch import nn
from transformers import AutoConfig, AutoModel, CLIPModel, CLIPVisionConfig, CLIPVisionModel
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as transformers_logging

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel
from modeling_maxi.modeling_maxi_video_clip import MaxiCrossFrameAttention, average_keys_over_frames
from tests.helpers.tiny_models import tiny_clip_model, tiny_maxi_config, tiny_model

ATOL = 1e-5


def _videos(batch=2, frames=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, 32, 32, generator=generator)


def _clip_twin(model: MaxiVideoCLIPModel) -> CLIPModel:
    clip = CLIPModel._from_config(model.config).eval()
    clip.load_state_dict(model.state_dict())
    return clip


# ---------------------------------------------------------------- config


def test_config_defaults_follow_the_paper():
    config = MaxiVideoCLIPConfig()
    assert config.model_type == "maxi_video_clip"
    assert "num_frames" not in config.to_dict()  # frame sampling is the processor's (MaxiVideoProcessor.num_frames)
    assert config.frame_pooling == "mean"
    assert config.cross_frame_layers == 0
    assert tuple(config.cross_frame_offsets) == (-1, 0, 1)
    assert torch.tensor(config.logit_scale_init_value).exp().item() == pytest.approx(1 / 0.02)
    assert MaxiVideoCLIPModel(tiny_maxi_config()).logit_scale.exp().item() == pytest.approx(50.0, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"cross_frame_layers": "1"}, StrictDataclassFieldValidationError, "cross_frame_layers"),
        ({"frame_pooling": "avg"}, StrictDataclassClassValidationError, "'avg'"),
        ({"cross_frame_layers": 3}, StrictDataclassClassValidationError, "cross_frame_layers"),
        ({"cross_frame_layers": -1}, StrictDataclassClassValidationError, "cross_frame_layers"),
        ({"cross_frame_offsets": [0, 0]}, StrictDataclassClassValidationError, "cross_frame_offsets"),
        ({"cross_frame_offsets": []}, StrictDataclassClassValidationError, "cross_frame_offsets"),
    ],
)
def test_config_rejects_bad_values_with_their_name(overrides, error, message):
    with pytest.raises(error, match=message):
        tiny_maxi_config(**overrides)


def test_config_round_trip_and_auto_config(tmp_path):
    config = tiny_maxi_config(cross_frame_layers=1, frame_pooling="max")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MaxiVideoCLIPConfig)
    assert (loaded.frame_pooling, loaded.cross_frame_layers) == ("max", 1)
    assert list(loaded.cross_frame_offsets) == [-1, 0, 1]
    assert loaded.vision_config.hidden_size == 32


def test_a_config_saved_with_the_retired_num_frames_still_loads(tmp_path):
    """`num_frames` was a config field that nothing read; old checkpoints keep it in config.json."""
    model = tiny_model()
    model.save_pretrained(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    saved = json.loads(config_path.read_text())
    assert "num_frames" not in saved
    config_path.write_text(json.dumps({**saved, "num_frames": 16}))
    loaded = MaxiVideoCLIPModel.from_pretrained(tmp_path / "old")
    assert not hasattr(loaded.config, "num_frames")
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
    loaded.save_pretrained(tmp_path / "resaved")  # saving again drops the key
    assert "num_frames" not in json.loads((tmp_path / "resaved" / "config.json").read_text())
    with pytest.raises(ValueError, match="num_frames"):
        MaxiVideoCLIPModel.from_clip(_clip_twin(model), num_frames=8)


# ---------------------------------------------------------------- equivalence with CLIP


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_mean_pooled_video_embedding_equals_mean_of_clip_image_features(attn_implementation):
    model = tiny_model()
    model.set_attn_implementation(attn_implementation)
    clip = _clip_twin(model)
    clip.set_attn_implementation(attn_implementation)
    videos = _videos()
    with torch.no_grad():
        outputs = model.get_video_features(videos)
        per_frame = clip.get_image_features(videos.flatten(0, 1)).pooler_output.view(2, 4, -1)
    assert outputs.pooler_output.shape == (2, 16)
    assert outputs.frame_embeds.shape == (2, 4, 16)
    torch.testing.assert_close(outputs.frame_embeds, per_frame, atol=ATOL, rtol=0)
    torch.testing.assert_close(outputs.pooler_output, per_frame.mean(dim=1), atol=ATOL, rtol=0)


def test_max_and_none_pooling():
    videos = _videos()
    with torch.no_grad():
        frames = tiny_model().get_video_features(videos).frame_embeds
        max_pooled = tiny_model(frame_pooling="max").get_video_features(videos).pooler_output
        unpooled = tiny_model(frame_pooling="none")(input_ids=torch.tensor([[49406, 320, 49407]]), pixel_values=videos)
    torch.testing.assert_close(max_pooled, frames.amax(dim=1), atol=ATOL, rtol=0)
    assert unpooled.video_embeds.shape == (2, 4, 16)
    frame_cosines = unpooled.video_embeds @ unpooled.text_embeds[0]
    expected = frame_cosines.mean(dim=1, keepdim=True) * 50.0
    torch.testing.assert_close(unpooled.logits_per_video, expected, atol=1e-4, rtol=0)


def test_four_dimensional_input_is_a_one_frame_video():
    model = tiny_model()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        video_embeds = model.get_video_features(images).pooler_output
        image_embeds = _clip_twin(model).get_image_features(images).pooler_output
    torch.testing.assert_close(video_embeds, image_embeds, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="pixel_values"):
        model.get_video_features(torch.randn(3, 32, 32))


def test_forward_logits_are_scaled_cosines_of_normalised_embeddings(clip_tokenizer):
    model = tiny_model()
    texts = clip_tokenizer(["a photo of a dog.", "a photo of juggling balls."], padding=True, return_tensors="pt")
    videos = _videos(batch=3)
    with torch.no_grad():
        outputs = model(**texts, pixel_values=videos)
        video_embeds = model.get_video_features(videos).pooler_output
        text_embeds = model.get_text_features(**texts).pooler_output
    assert outputs.logits_per_video.shape == (3, 2)
    assert outputs.logits_per_text.shape == (2, 3)
    torch.testing.assert_close(outputs.video_embeds.norm(dim=-1), torch.ones(3))
    cosine = nn.functional.cosine_similarity(video_embeds[:, None], text_embeds[None], dim=-1)
    torch.testing.assert_close(outputs.logits_per_video, cosine * model.logit_scale.exp(), atol=1e-4, rtol=0)
    torch.testing.assert_close(outputs.logits_per_text, outputs.logits_per_video.t())


def test_return_loss_is_clip_symmetric_loss(clip_tokenizer):
    model = tiny_model()
    texts = clip_tokenizer(["one", "two"], padding=True, return_tensors="pt")
    outputs = model(**texts, pixel_values=_videos(), return_loss=True)
    labels = torch.arange(2)
    logits = outputs.logits_per_video
    expected = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(outputs.loss, expected)
    with pytest.raises(ValueError, match="one text per video"):
        model(**clip_tokenizer(["one"], return_tensors="pt"), pixel_values=_videos(), return_loss=True)


# ---------------------------------------------------------------- cross-frame attention (supplementary Eq. 1)


def reference_cross_frame_attention(attention: nn.Module, hidden: torch.Tensor, num_frames: int, offsets):
    """Eq. 1 written out: for frame t, average Q_t K_{t+i}^T over the offsets whose frame exists, scale, softmax,
    multiply by V_t; heads handled one by one with explicit loops over frames."""
    frames_total, length, width = hidden.shape
    heads = attention.num_heads
    head_dim = width // heads
    q = attention.q_proj(hidden).view(frames_total, length, heads, head_dim)
    k = attention.k_proj(hidden).view(frames_total, length, heads, head_dim)
    v = attention.v_proj(hidden).view(frames_total, length, heads, head_dim)
    output = torch.zeros(frames_total, length, heads, head_dim)
    for video in range(frames_total // num_frames):
        for t in range(num_frames):
            row = video * num_frames + t
            neighbours = [video * num_frames + t + i for i in offsets if 0 <= t + i < num_frames]
            for h in range(heads):
                scores = sum(q[row, :, h] @ k[n, :, h].T for n in neighbours) / len(neighbours)
                weights = torch.softmax(scores * head_dim**-0.5, dim=-1)
                output[row, :, h] = weights @ v[row, :, h]
    return attention.out_proj(output.reshape(frames_total, length, width))


@pytest.mark.parametrize("offsets", [(-1, 0, 1), (-2, 0), (0, 1, 2, 3)])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_cross_frame_attention_matches_equation_1(offsets, attn_implementation):
    config = tiny_maxi_config(cross_frame_layers=1, cross_frame_offsets=list(offsets)).vision_config
    config._attn_implementation = attn_implementation
    torch.manual_seed(1)
    attention = MaxiCrossFrameAttention(config, offsets).eval()
    hidden = torch.randn(2 * 5, 17, 32)
    with torch.no_grad():
        output, _ = attention(hidden, num_frames=5)
        expected = reference_cross_frame_attention(attention, hidden, 5, offsets)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


def test_key_averaging_handles_edges_and_rejects_bad_shapes():
    keys = torch.arange(4.0).view(4, 1, 1)  # one video, frame t has key t
    averaged = average_keys_over_frames(keys, 4, (-1, 0, 1)).flatten().tolist()
    assert averaged == pytest.approx([0.5, 1.0, 2.0, 2.5])
    with pytest.raises(ValueError, match="num_frames=3"):
        average_keys_over_frames(keys, 3, (-1, 0, 1))
    with pytest.raises(ValueError, match="without keys"):
        average_keys_over_frames(keys, 2, (5,))


def test_cross_frame_layers_are_the_last_n_and_sdpa_equals_eager():
    model = tiny_model(cross_frame_layers=1)
    layers = model.vision_model.encoder.layers
    assert not isinstance(layers[0].self_attn, MaxiCrossFrameAttention)
    assert isinstance(layers[1].self_attn, MaxiCrossFrameAttention)
    assert not any(isinstance(m, MaxiCrossFrameAttention) for m in model.text_model.modules())
    assert set(model.state_dict()) == set(tiny_model().state_dict())  # parameter-free
    videos = _videos()
    with torch.no_grad():
        sdpa = model.get_video_features(videos).pooler_output
        model.set_attn_implementation("eager")
        eager = model.get_video_features(videos).pooler_output
        plain = tiny_model().get_video_features(videos).pooler_output
    torch.testing.assert_close(sdpa, eager, atol=ATOL, rtol=0)
    assert (sdpa - plain).abs().max() > 1e-3  # the temporal mixing changes the result


def test_whole_vision_tower_with_cross_frame_layers_matches_reference():
    model = tiny_model(cross_frame_layers=2)
    vision = model.vision_model
    videos = _videos(batch=1, frames=3)
    with torch.no_grad():
        hidden = vision.pre_layrnorm(vision.embeddings(videos.flatten(0, 1)))
        for layer in vision.encoder.layers:
            hidden = hidden + reference_cross_frame_attention(layer.self_attn, layer.layer_norm1(hidden), 3, (-1, 0, 1))
            hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
        expected = model.visual_projection(vision.post_layernorm(hidden[:, 0])).mean(dim=0, keepdim=True)
        actual = model.get_video_features(videos).pooler_output
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_one_frame_cross_frame_model_equals_plain_model():
    videos = _videos(frames=1)
    with torch.no_grad():
        crossed = tiny_model(cross_frame_layers=2).get_video_features(videos).pooler_output
        plain = tiny_model().get_video_features(videos).pooler_output
    torch.testing.assert_close(crossed, plain, atol=ATOL, rtol=0)


def test_gradient_checkpointing_keeps_cross_frame_gradients():
    videos = _videos()

    def gradients(checkpointing):
        model = tiny_model(cross_frame_layers=2).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        model.get_video_features(videos).pooler_output.square().sum().backward()
        return {n: p.grad.clone() for n, p in model.vision_model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


# ---------------------------------------------------------------- loading and conversion


def test_from_pretrained_of_a_clip_checkpoint_loads_every_weight(tmp_path):
    clip = _clip_twin(tiny_model(seed=3))
    clip.save_pretrained(tmp_path)
    model, info = MaxiVideoCLIPModel.from_pretrained(tmp_path, output_loading_info=True, frame_pooling="max")
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, tensor in clip.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)
    assert model.config.frame_pooling == "max"


def test_a_plain_clip_checkpoint_loads_silently_and_exactly(tmp_path):
    clip = tiny_clip_model(seed=3)
    clip.save_pretrained(tmp_path / "clip")
    assert json.loads((tmp_path / "clip" / "config.json").read_text())["model_type"] == "clip"
    with CaptureLogger(transformers_logging.get_logger("transformers")) as captured:
        model, info = MaxiVideoCLIPModel.from_pretrained(tmp_path / "clip", output_loading_info=True)
    assert "You are using a model of type" not in captured.out and "can yield errors" not in captured.out
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.model_type == "maxi_video_clip" and model.config.frame_pooling == "mean"
    assert model.config.architectures is None  # not CLIPModel's any more: saving writes MaxiVideoCLIPModel
    for name, tensor in clip.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)
    videos = _videos(batch=1, frames=3)
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=videos[0]).pooler_output.mean(dim=0)
        torch.testing.assert_close(model.get_video_features(videos).pooler_output[0], expected, atol=ATOL, rtol=1e-5)
    model.save_pretrained(tmp_path / "maxi")
    assert json.loads((tmp_path / "maxi" / "config.json").read_text())["architectures"] == ["MaxiVideoCLIPModel"]


def test_an_incompatible_checkpoint_still_warns(tmp_path):
    maxi = tiny_maxi_config()
    CLIPVisionModel(CLIPVisionConfig(**maxi.vision_config.to_dict())).save_pretrained(tmp_path)
    with CaptureLogger(transformers_logging.get_logger("transformers")) as captured:
        MaxiVideoCLIPModel.from_pretrained(tmp_path)
    assert "You are using a model of type `clip_vision_model` to instantiate a model of type `maxi_video_clip`" in (
        captured.out
    )


def test_from_clip_converts_in_memory_and_validates():
    clip = _clip_twin(tiny_model(seed=4))
    model = MaxiVideoCLIPModel.from_clip(clip, cross_frame_layers=1, frame_pooling="max")
    assert model.config.cross_frame_layers == 1 and model.config.frame_pooling == "max"
    for name, tensor in clip.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)
    with pytest.raises(TypeError, match="CLIPModel"):
        MaxiVideoCLIPModel.from_clip(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="num_frame"):
        MaxiVideoCLIPModel.from_clip(clip, num_frame=8)


def test_save_pretrained_writes_safetensors_auto_map_and_code(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and "pytorch_model.bin" not in files
    assert {"modeling_maxi_video_clip.py", "configuration_maxi_video_clip.py", "scoring.py"} <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_maxi_video_clip.MaxiVideoCLIPModel"
    assert isinstance(AutoModel.from_pretrained(tmp_path), MaxiVideoCLIPModel)


def test_remote_code_loads_without_the_package(tiny_model_dir, tmp_path):
    """A fresh process where `import modeling_maxi` fails still loads model and processor from the saved folder."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_maxi"] = None  # block the package
        import numpy as np, torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(tiny_model_dir)!r}, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained({str(tiny_model_dir)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        video = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
        inputs = processor(videos=video, text=["a photo of a dog.", "a photo of a cat."])
        with torch.no_grad():
            print(model(**inputs).logits_per_video.shape)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.Size([1, 2])" in result.stdout
