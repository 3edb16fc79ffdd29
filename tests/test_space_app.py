# SPDX-License-Identifier: Apache-2.0
"""Tests of the Gradio Space (`space_app/`): input checks, heatmaps, model cache, and the app served on 127.0.0.1."""

import colorsys
import contextlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeling_maxi import MaxiVideoProcessor, load_class_names, patch_text_similarity, zero_shot_classify
from space_app.config import SpaceConfig
from space_app.heatmaps import center_crop_square, colorize, normalize_maps, overlay_heatmaps
from space_app.inference import ModelCache, ModelLoadError, SpacePredictor
from space_app.inputs import SpaceInputError, check_labels, check_video, parse_custom_labels
from tests.helpers.tiny_models import save_tiny_clip
from tests.helpers.videos import (
    make_moving_square_frames,
    write_corrupt_video,
    write_empty_video,
    write_video,
)

CUSTOM_LABELS = ["juggling balls", "playing guitar", "riding a bike", "archery", "swimming", "cooking", "dancing"]
MAX_LABELS = 60
MAX_DURATION_S = 5.0
MAX_FILE_SIZE_MB = 0.05


# ----------------------------------------------------------------------------------------------------------------
# Helpers shared with tests/test_space_browser.py
# ----------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_demo(config: SpaceConfig, predictor: SpacePredictor | None = None):
    """Launches the Space on 127.0.0.1 (free port) in this process; yields its URL and closes it afterwards."""
    from space_app.app import build_demo

    demo = build_demo(config, predictor)
    demo.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield demo.local_url
    finally:
        demo.close()


def space_config(maxi_dir, clip_dir, **overrides) -> SpaceConfig:
    settings = {
        "model_id": str(maxi_dir),
        "base_model_id": str(clip_dir),
        "max_labels": MAX_LABELS,
        "max_duration_s": MAX_DURATION_S,
        "max_file_size_mb": MAX_FILE_SIZE_MB,
        "heatmap_size": 64,
        "device": "cpu",
        **overrides,
    }
    return SpaceConfig(**settings)


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Good and bad inputs for the Space, keyed by what they exercise."""
    folder = tmp_path_factory.mktemp("space_videos")
    files = {
        "ok": write_video(folder / "clip.mp4", make_moving_square_frames(16, (64, 96), seed=0), fps=8),
        "too_long": write_video(folder / "long.mp4", make_moving_square_frames(24, (64, 96), seed=2), fps=2),
        "garbage": write_corrupt_video(folder / "garbage.mp4"),
        "truncated": write_corrupt_video(folder / "truncated.mp4", kind="truncated"),
        "zero_bytes": write_empty_video(folder / "zero.mp4", kind="zero_bytes"),
        "audio_only": write_empty_video(folder / "audio.mp4", kind="audio_only"),
    }
    # Random noise does not compress: 12 frames of 128x128 noise are far over the 0.05 MB limit.
    noise = np.random.default_rng(3).integers(0, 256, size=(12, 128, 128, 3), dtype=np.uint8)
    files["too_big"] = write_video(folder / "noise.mp4", noise, fps=8, crf=0)
    text = folder / "notes.txt"
    text.write_text("not a video\n")
    files["text"] = str(text)
    image = folder / "still.mp4"
    Image.fromarray(make_moving_square_frames(1, (64, 96))[0]).save(image, format="PNG")
    files["image_as_mp4"] = str(image)
    return files


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, tiny_clip_dir):
    return SpacePredictor(space_config(tiny_model_dir, tiny_clip_dir))


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------


def test_config_from_env_parses_types_and_overrides_win():
    environ = {
        "MAXI_MODEL_ID": "/models/maxi",
        "MAXI_MAX_LABELS": "12",
        "MAXI_MAX_DURATION_S": "7.5",
        "MAXI_NUM_FRAMES": "8",
        "MAXI_DEVICE": "",
    }
    config = SpaceConfig.from_env(environ, max_labels=3)
    assert config.model_id == "/models/maxi"
    assert config.base_model_id == "openai/clip-vit-base-patch16"
    assert config.max_labels == 3
    assert config.max_duration_s == 7.5
    assert config.num_frames == 8
    assert config.device is None
    assert config.max_file_size_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"MAXI_MAX_LABELS": "many"}, "MAXI_MAX_LABELS='many'"),
        ({"MAXI_MAX_DURATION_S": "-1"}, "max_duration_s must be > 0, got -1.0"),
        ({"MAXI_TEMPLATE": "a video of"}, "template must contain exactly one '{}'"),
        ({"MAXI_HEATMAP_ALPHA": "1.5"}, "heatmap_alpha must be in [0, 1], got 1.5"),
    ],
)
def test_config_rejects_bad_values_naming_them(environ, message):
    with pytest.raises(ValueError) as info:
        SpaceConfig.from_env(environ)
    assert message in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def test_check_video_accepts_real_mp4_and_reads_its_geometry(videos):
    info = check_video(videos["ok"], max_file_size_bytes=2**20, max_duration_s=5)
    assert info.duration_s == pytest.approx(2.0, abs=0.2)
    assert (info.width, info.height) == (96, 64)
    assert info.size_bytes == os.path.getsize(videos["ok"])


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "'notes.txt' is not a video file (extension '.txt')"),
        ("image_as_mp4", "'still.mp4' is not a video file (it holds a"),
        ("audio_only", "'audio.mp4' is not a video file: it has no video stream"),
        ("garbage", "Could not read the video 'garbage.mp4'"),
        ("truncated", "Could not read the video 'truncated.mp4'"),
        ("zero_bytes", "Could not read the video 'zero.mp4': the file is empty"),
        ("too_big", "over the size limit of 0.05 MB"),
        ("too_long", "'long.mp4' is 12.0 s long, over the duration limit of 5 s"),
    ],
)
def test_check_video_refuses_bad_files_with_a_clear_message(videos, kind, message):
    with pytest.raises(SpaceInputError) as info:
        check_video(videos[kind], max_file_size_bytes=int(MAX_FILE_SIZE_MB * 2**20), max_duration_s=MAX_DURATION_S)
    assert message in str(info.value)
    # The user never sees server-side paths.
    assert os.path.dirname(videos[kind]) not in str(info.value)


def test_check_video_accepts_webm_and_measures_it_from_packets(tmp_path):
    import av

    from space_app.inputs import _duration_from_packets

    # Webcam recordings arrive as webm, whose header often carries no duration.
    path = write_video(tmp_path / "webcam.webm", make_moving_square_frames(16, (64, 96), seed=4), codec="libvpx-vp9")
    assert check_video(path, max_file_size_bytes=2**20, max_duration_s=5).duration_s == pytest.approx(2.0, abs=0.2)
    with av.open(path) as container:
        assert _duration_from_packets(container, container.streams.video[0]) == pytest.approx(2.0, abs=0.2)


def test_check_video_without_a_file():
    with pytest.raises(SpaceInputError, match="Please upload a video"):
        check_video(None, 2**20, 5)


def test_parse_custom_labels_splits_lines_and_commas_and_drops_repeats():
    text = "playing guitar, juggling  balls\n\n  archery \nPlaying Guitar,,swimming"
    assert parse_custom_labels(text) == ["playing guitar", "juggling balls", "archery", "swimming"]
    assert parse_custom_labels("  \n , ") == []
    assert parse_custom_labels(None) == []


def test_check_labels_limits():
    assert check_labels(["a", "b"], max_labels=2) == ["a", "b"]
    with pytest.raises(SpaceInputError, match="The label list is empty"):
        check_labels([], max_labels=2)
    with pytest.raises(SpaceInputError, match="Too many labels: got 3, the limit is 2"):
        check_labels(["a", "b", "c"], max_labels=2)
    with pytest.raises(SpaceInputError, match="is 201 characters long"):
        check_labels(["x" * 201], max_labels=2)


# ----------------------------------------------------------------------------------------------------------------
# Heatmaps
# ----------------------------------------------------------------------------------------------------------------


def _warmth(rgb) -> np.ndarray:
    """Warmth of colours as 240 minus the hue in degrees: 0 for blue, 240 for red (grey blending keeps the hue)."""
    rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    hues = np.array([colorsys.rgb_to_hsv(*pixel)[0] * 360.0 for pixel in rgb])
    return 240.0 - np.where(hues > 300.0, 0.0, hues)


def test_colorize_goes_from_cold_to_warm():
    values = np.linspace(0.0, 1.0, 11)
    colours = colorize(values)
    assert colours.shape == (11, 3) and colours.dtype == np.uint8
    assert colours[0].tolist() == [0, 0, 128]
    assert colours[-1].tolist() == [128, 0, 0]
    warmth = _warmth(colours)
    assert np.all(np.diff(warmth) >= 0) and warmth[0] == 0.0 and warmth[-1] == 240.0
    np.testing.assert_array_equal(colorize(np.array([-3.0, 7.0])), colorize(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="non-finite"):
        colorize(np.array([0.5, np.nan]))


def test_normalize_maps_scales_jointly_over_frames():
    similarity = np.array([[[0.1, 0.2]], [[0.3, 0.5]]])
    scaled = normalize_maps(similarity)
    np.testing.assert_allclose(scaled, [[[0.0, 0.25]], [[0.5, 1.0]]])
    np.testing.assert_array_equal(normalize_maps(np.full((2, 3, 3), 0.4)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"shape \(T, h, w\)"):
        normalize_maps(np.zeros((3, 3)))


def test_center_crop_square_drops_the_sides_like_clip():
    frame = np.zeros((64, 96, 3), dtype=np.uint8)
    frame[:, :16] = (255, 0, 0)  # left band, outside the centre 64x64 crop
    frame[:, 16:80] = (0, 255, 0)
    crop = np.asarray(center_crop_square(frame, 32))
    assert crop.shape == (32, 32, 3)
    assert crop[..., 0].max() < 40 and crop[..., 1].min() > 200


def test_overlay_puts_the_warm_colour_where_the_similarity_is_high():
    frames = np.full((2, 48, 48, 3), 128, dtype=np.uint8)
    similarity = np.zeros((2, 4, 4))
    similarity[0, 0, 3] = 1.0  # top-right patch of frame 0
    similarity[1, 3, 0] = 0.5  # bottom-left patch of frame 1, half as similar
    images = overlay_heatmaps(frames, similarity, size=64, alpha=0.6)
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    first, second = (np.asarray(image) for image in images)
    (top_right, bottom_left) = _warmth([first[4, 60], first[60, 4]])
    assert top_right == 240.0 and bottom_left == 0.0
    assert _warmth(second[60, 4])[0] > _warmth(second[4, 60])[0]
    # Joint scaling: frame 1's peak (0.5) is cooler than frame 0's (1.0).
    assert 0.0 < _warmth(second[60, 4])[0] < 240.0
    with pytest.raises(ValueError, match="T=2 frames"):
        overlay_heatmaps(frames, similarity[:1])


# ----------------------------------------------------------------------------------------------------------------
# Model cache and predictor (no server)
# ----------------------------------------------------------------------------------------------------------------


def test_model_cache_loads_each_checkpoint_once(tiny_model_dir, tiny_clip_dir):
    cache = ModelCache(device="cpu")
    first = cache.get(str(tiny_model_dir))
    assert cache.get(str(tiny_model_dir)) is first
    base = cache.get(str(tiny_clip_dir))
    assert base.model is not first.model
    assert cache.cache_info().misses == 2 and cache.cache_info().hits == 1
    assert not first.model.training
    with pytest.raises(ModelLoadError, match="Could not load the model '/nonexistent/maxi'"):
        cache.get("/nonexistent/maxi")


def test_predictor_matches_the_library_for_both_models(predictor, videos, tiny_model_dir, tiny_clip_dir):
    from modeling_maxi import read_video_frames

    prediction = predictor.predict(videos["ok"], "Custom", "\n".join(CUSTOM_LABELS), "")
    frames = read_video_frames(videos["ok"], 4)
    maxi = predictor.models.get(str(tiny_model_dir))
    base = predictor.models.get(str(tiny_clip_dir))
    # The base CLIP's processor samples 16 frames by default; the Space must give it the same 4 frames as MAXI.
    base_processor = MaxiVideoProcessor.from_pretrained(str(tiny_clip_dir), num_frames=4)
    expected_maxi = zero_shot_classify(maxi.model, maxi.processor, frames, CUSTOM_LABELS, top_k=5)
    expected_base = zero_shot_classify(base.model, base_processor, frames, CUSTOM_LABELS, top_k=5)
    assert list(prediction.maxi_scores) == [item["label"] for item in expected_maxi]
    np.testing.assert_allclose(list(prediction.maxi_scores.values()), [item["score"] for item in expected_maxi])
    np.testing.assert_allclose(list(prediction.base_scores.values()), [item["score"] for item in expected_base])
    assert prediction.maxi_scores != prediction.base_scores
    assert prediction.heatmap_label == expected_maxi[0]["label"]
    assert prediction.num_frames == 4 and len(prediction.heatmaps) == 4

    # The gallery is exactly the library's similarity map of the heatmap label drawn over the frames MAXI saw.
    similarity = patch_text_similarity(maxi.model, maxi.processor, frames, prediction.heatmap_label).numpy()
    expected_images = overlay_heatmaps(frames, similarity, size=64, alpha=predictor.config.heatmap_alpha)
    for (image, caption), expected in zip(prediction.heatmaps, expected_images):
        assert caption.startswith(prediction.heatmap_label)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))


def test_predictor_uses_the_requested_heatmap_label_and_builtin_sets(predictor, videos):
    prediction = predictor.predict(videos["ok"], "HMDB51", "ignored, labels", "somersault")
    hmdb = load_class_names("hmdb51")
    assert prediction.num_labels == len(hmdb) == 51
    assert set(prediction.maxi_scores) <= set(hmdb) and len(prediction.maxi_scores) == 5
    assert prediction.heatmap_label == "somersault"
    with pytest.raises(SpaceInputError, match="Too many labels: got 101, the limit is 60"):
        predictor.predict(videos["ok"], "UCF101", "", "")
    with pytest.raises(SpaceInputError, match="Unknown label set 'K700'"):
        predictor.predict(videos["ok"], "K700", "", "")
    with pytest.raises(SpaceInputError, match=r"The label set must be one of .*, got \['HMDB51'\]"):
        predictor.predict(videos["ok"], ["HMDB51"], "", "")


def test_app_runs_as_a_script_from_a_space_repository_layout(tmp_path, monkeypatch):
    """On Spaces the files of space_app/ sit at the repository root (any folder name) and app.py runs as a script."""
    import importlib.util
    import shutil
    import sys

    space_repo = tmp_path / "my-space"
    space_repo.mkdir()
    for path in (Path(__file__).resolve().parents[1] / "space_app").glob("*.py"):
        shutil.copy(path, space_repo / path.name)
    # Run the copy as a fresh script would: no `space_app` package imported yet (restored after the test).
    for name in [name for name in sys.modules if name == "space_app" or name.startswith("space_app.")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("space_script_app", space_repo / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    try:
        assert sys.modules["space_app"].__path__ == [str(space_repo)]
        assert sys.modules["space_app.config"].__file__ == str(space_repo / "config.py")
        assert app.SpaceConfig is sys.modules["space_app.config"].SpaceConfig
        assert callable(app.build_demo)
    finally:
        for name in [name for name in sys.modules if name == "space_app" or name.startswith("space_app.")]:
            del sys.modules[name]


# ----------------------------------------------------------------------------------------------------------------
# The served app, called through gradio_client
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(predictor):
    from gradio_client import Client

    with serve_demo(predictor.config, predictor) as url:
        yield Client(url, verbose=False)


def _call(client, video, label_set="Custom", custom_labels="", heatmap_label=""):
    from gradio_client import handle_file

    return client.predict(handle_file(video), label_set, custom_labels, heatmap_label, api_name="/classify")


def test_api_exposes_only_the_classify_endpoint(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(endpoints) == ["/classify"]
    assert [parameter["parameter_name"] for parameter in endpoints["/classify"]["parameters"]] == [
        "video",
        "label_set",
        "custom_labels",
        "heatmap_label",
    ]


def test_classify_through_gradio_client(client, videos):
    maxi, base, gallery, summary = _call(client, videos["ok"], custom_labels=", ".join(CUSTOM_LABELS))
    for output in (maxi, base):
        confidences = output["confidences"]
        assert len(confidences) == 5
        assert {item["label"] for item in confidences} <= set(CUSTOM_LABELS)
        scores = [item["confidence"] for item in confidences]
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert sum(scores) <= 1.0 + 1e-6
        assert scores == sorted(scores, reverse=True)
        assert output["label"] == confidences[0]["label"]
    assert maxi["confidences"] != base["confidences"]
    assert len(gallery) == 4
    for index, item in enumerate(gallery):
        with Image.open(item["image"]) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
        assert item["caption"] == f"{maxi['label']} · frame {index + 1}/4"
    assert f"Heatmap label: **{maxi['label']}**" in summary and "7 candidate labels" in summary


@pytest.mark.parametrize(
    "kind, label_set, custom_labels, message",
    [
        ("text", "Custom", "archery", "'notes.txt' is not a video file"),
        ("garbage", "Custom", "archery", "Could not read the video 'garbage.mp4'"),
        ("too_big", "Custom", "archery", "over the size limit of 0.05 MB"),
        ("too_long", "Custom", "archery", "over the duration limit of 5 s"),
        ("ok", "Custom", " ,\n , ", "The label list is empty"),
        ("ok", "Custom", ",".join(f"action {i}" for i in range(MAX_LABELS + 1)), "Too many labels: got 61, the limit"),
        ("ok", "UCF101", "", "Too many labels: got 101, the limit is 60"),
    ],
)
def test_bad_input_returns_its_message(client, videos, kind, label_set, custom_labels, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        _call(client, videos[kind], label_set, custom_labels)
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# One vision pass per model per request; label sets encoded once; the shipped examples
# ----------------------------------------------------------------------------------------------------------------


def test_a_request_runs_one_vision_pass_per_model_and_reuses_label_sets(tiny_model_dir, tiny_clip_dir, videos):
    from modeling_maxi.zero_shot import label_embedding_cache

    predictor = SpacePredictor(space_config(tiny_model_dir, tiny_clip_dir))
    passes = {}
    for name, model_id in (("maxi", str(tiny_model_dir)), ("clip", str(tiny_clip_dir))):
        model = predictor.models.get(model_id).model
        passes[name] = []
        model.vision_model.register_forward_hook(lambda module, args, output, key=name: passes[key].append(1))
    predictor.predict(videos["ok"], "HMDB51", "", "")
    assert {name: len(calls) for name, calls in passes.items()} == {"maxi": 1, "clip": 1}
    predictor.predict(videos["ok"], "HMDB51", "", "somersault")  # a heatmap text outside the set: no extra pass
    predictor.predict(videos["ok"], "HMDB51", "", "")
    assert {name: len(calls) for name, calls in passes.items()} == {"maxi": 3, "clip": 3}
    for model_id in (str(tiny_model_dir), str(tiny_clip_dir)):
        cache = label_embedding_cache(predictor.models.get(model_id).model)
        assert cache.num_encoded == 1 and len(cache) == 1  # HMDB51 encoded once; the one-off text took no slot


def test_the_shipped_examples_are_small_licensed_reproducible_and_valid_requests(
    tmp_path, tiny_model_dir, tiny_clip_dir
):
    from modeling_maxi import read_video_frames
    from scripts.make_space_examples import main as make_examples
    from space_app.config import EXAMPLES_DIR, SPACE_EXAMPLES

    licence = (EXAMPLES_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "CC0 1.0" in licence and "scripts/make_space_examples.py" in licence
    made = make_examples(["--output_dir", str(tmp_path / "made")])
    assert [path.name for path in made] == [example.file for example in SPACE_EXAMPLES]
    predictor = SpacePredictor(space_config(tiny_model_dir, tiny_clip_dir, max_labels=400))
    for example, remade in zip(SPACE_EXAMPLES, made):
        shipped = EXAMPLES_DIR / example.file
        assert shipped.stat().st_size < 50_000 and example.file in licence
        frames, again = read_video_frames(shipped, 8), read_video_frames(remade, 8)
        assert frames.shape == again.shape and np.abs(frames.astype(int) - again.astype(int)).mean() < 2.0
        prediction = predictor.predict(*example.inputs())
        assert len(prediction.maxi_scores) == 5 and len(prediction.heatmaps) == 4
        assert prediction.heatmap_label == (example.heatmap_label or next(iter(prediction.maxi_scores)))
