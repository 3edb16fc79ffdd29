# SPDX-License-Identifier: Apache-2.0
"""MaxiVideoProcessor: frame sampling from files and arrays, CLIP preprocessing, tokenisation, save/load."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, AutoVideoProcessor

from modeling_maxi import MaxiVideoCLIPVideoProcessor, MaxiVideoProcessor, sample_frame_indices
from tests.helpers.tiny_models import save_tiny_clip, tiny_image_processor, tiny_processor
from tests.helpers.videos import decode_frame_index, make_moving_square_frames


def _indexed_video(num_frames: int) -> np.ndarray:
    """Frames whose every pixel holds the frame index, so sampled indices can be read back from pixel values."""
    return np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, 8, 8, 3)).copy()


def _frames_read_back(processor, video, **kwargs) -> list[int]:
    return [int(frame[0, 0, 0]) for frame in processor.sample_videos(video, **kwargs)[0]]


def test_segment_sampling_of_an_array_takes_segment_centres():
    processor = tiny_processor(num_frames=4)
    assert _frames_read_back(processor, _indexed_video(16)) == [2, 6, 10, 14]
    assert _frames_read_back(processor, _indexed_video(16), sampling="uniform") == [0, 5, 10, 15]
    assert _frames_read_back(processor, _indexed_video(2)) == [0, 0, 1, 1]  # fewer frames: repeated in order


def test_training_sampling_is_random_inside_segments_and_seeded():
    processor = tiny_processor(num_frames=4)
    video = _indexed_video(40)
    draws = [
        _frames_read_back(processor, video, training=True, generator=np.random.default_rng(seed)) for seed in range(20)
    ]
    for frames in draws:
        assert [f // 10 for f in frames] == [0, 1, 2, 3]  # one frame inside each 10-frame segment
    assert len({tuple(d) for d in draws}) > 10
    again = _frames_read_back(processor, video, training=True, generator=np.random.default_rng(3))
    assert again == draws[3]
    assert sample_frame_indices(40, 4, training=True, generator=np.random.default_rng(3)) == draws[3]


def test_pixel_values_are_clip_preprocessed_frames(clip_tokenizer):
    processor = tiny_processor(num_frames=4)
    video = np.random.default_rng(0).integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    batch = processor(videos=[video, video[::-1].copy()], text=["a photo of a cat"], return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)
    # Exactly what CLIP's image processor gives for the sampled frames (the processor's output before it had a
    # video processor): not a tolerance, the same numbers.
    for index, frames in enumerate((video[[1, 4, 7, 10]], video[::-1][[1, 4, 7, 10]])):
        expected = tiny_image_processor()(
            images=list(torch.from_numpy(frames).permute(0, 3, 1, 2)), return_tensors="pt"
        )["pixel_values"]
        assert torch.equal(batch["pixel_values"][index], expected)
        assert torch.equal(
            processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"], expected
        )
    assert batch["input_ids"].tolist() == [[49406, 320, 1125, 539, 320, 2368, 49407]]
    assert batch["attention_mask"].tolist() == [[1] * 7]


def test_video_file_input_reads_the_sampled_frames(moving_square_video):
    processor = tiny_processor(num_frames=4)
    frames = processor.sample_videos(str(moving_square_video))[0]
    assert frames.shape == (4, 48, 96, 3) and frames.dtype == np.uint8
    assert [decode_frame_index(f) for f in frames] == [2, 6, 10, 14]
    batch = processor(videos=str(moving_square_video))
    assert batch["pixel_values"].shape == (1, 4, 3, 32, 32)
    assert "input_ids" not in batch


def test_save_load_round_trip_and_auto_processor(tmp_path):
    processor = tiny_processor(num_frames=6)
    processor.sampling = "uniform"
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MaxiVideoProcessor)
    assert (loaded.num_frames, loaded.sampling) == (6, "uniform")
    video = make_moving_square_frames(10, (32, 96), seed=1)
    torch.testing.assert_close(loaded(videos=video)["pixel_values"], processor(videos=video)["pixel_values"])
    assert loaded.tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p(), ValueError, "videos"),
        (lambda p: p(videos=np.zeros((4, 8, 8), dtype=np.uint8)), ValueError, r"\(T, H, W, 3\)"),
        (lambda p: p(videos=np.zeros((4, 8, 8, 3), dtype=np.float32)), ValueError, "uint8"),
        (lambda p: p(videos=[]), TypeError, "videos"),
        (lambda p: p(videos=np.zeros((4, 8, 8, 3), dtype=np.uint8), num_frames=0), ValueError, "num_frames"),
        (lambda p: p(videos=np.zeros((4, 8, 8, 3), dtype=np.uint8), sampling="dense"), ValueError, "dense"),
        (lambda p: p(text=[1, 2]), TypeError, "text"),
        (lambda p: p(videos="/does/not/exist.mp4"), FileNotFoundError, "exist"),
    ],
)
def test_bad_inputs_fail_with_clear_messages(call, error, message):
    with pytest.raises(error, match=message):
        call(tiny_processor())


def test_constructor_validates_settings():
    with pytest.raises(ValueError, match="num_frames"):
        MaxiVideoProcessor(num_frames="8")
    with pytest.raises(ValueError, match="sampling"):
        MaxiVideoProcessor(sampling="random")
    with pytest.raises(ValueError, match="video_backend"):
        MaxiVideoCLIPVideoProcessor(video_backend="ffmpeg")
    with pytest.raises(ValueError, match="num_frames"):
        tiny_processor().num_frames = 0


# ---------------------------------------------------------------- the video processor (AutoVideoProcessor)


def test_the_saved_folder_has_a_video_processor_for_auto_video_processor(tmp_path):
    processor = tiny_processor(num_frames=6)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["video_processor_type"] == "MaxiVideoCLIPVideoProcessor" and saved["num_frames"] == 6
    assert saved["auto_map"]["AutoVideoProcessor"] == "video_processing_maxi.MaxiVideoCLIPVideoProcessor"
    assert (tmp_path / "video_processing_maxi.py").is_file() and (tmp_path / "video_io.py").is_file()
    video_processor = AutoVideoProcessor.from_pretrained(tmp_path)
    assert isinstance(video_processor, MaxiVideoCLIPVideoProcessor) and video_processor.num_frames == 6
    video = make_moving_square_frames(10, (32, 96), seed=1)
    assert torch.equal(video_processor(video)["pixel_values"], processor(videos=video)["pixel_values"])
    assert torch.equal(
        AutoProcessor.from_pretrained(tmp_path)(videos=video)["pixel_values"], processor(videos=video)["pixel_values"]
    )


def test_a_folder_saved_before_the_video_processor_still_loads(tmp_path):
    """MAXI folders of the previous release hold the image processor nested in processor_config.json."""
    processor = tiny_processor(num_frames=6)
    processor.save_pretrained(tmp_path)
    (tmp_path / "video_preprocessor_config.json").unlink()
    image_settings = tiny_image_processor().to_dict()
    (tmp_path / "processor_config.json").write_text(
        json.dumps(
            {
                "image_processor": image_settings,
                "num_frames": 6,
                "processor_class": "MaxiVideoProcessor",
                "sampling": "uniform",
                "video_backend": "auto",
            }
        )
    )
    loaded = MaxiVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.num_frames, loaded.sampling) == (6, "uniform")
    video = make_moving_square_frames(10, (32, 96), seed=2)
    processor.sampling = "uniform"
    assert torch.equal(loaded(videos=video)["pixel_values"], processor(videos=video)["pixel_values"])


def test_a_plain_clip_checkpoint_gives_a_processor_with_its_image_settings(tmp_path):
    save_tiny_clip(tmp_path)
    processor = MaxiVideoProcessor.from_pretrained(tmp_path)
    assert processor.num_frames == 16 and processor.sampling == "segment"
    video = make_moving_square_frames(20, (40, 96), seed=3)
    frames = processor.sample_videos(video)[0]
    expected = tiny_image_processor()(images=list(torch.from_numpy(frames).permute(0, 3, 1, 2)), return_tensors="pt")
    assert torch.equal(processor(videos=video)["pixel_values"][0], expected["pixel_values"])


def test_settings_given_to_the_processor_do_not_change_the_video_processor_passed_in():
    video_processor = MaxiVideoCLIPVideoProcessor(num_frames=4)
    processor = MaxiVideoProcessor(video_processor=video_processor, tokenizer=tiny_processor().tokenizer, num_frames=8)
    assert processor.num_frames == 8 and video_processor.num_frames == 4
    with pytest.raises(ValueError, match="do_sample_frames=False needs decoded frames"):
        video_processor("clip.mp4", do_sample_frames=False)
    every_frame = video_processor(np.zeros((5, 8, 8, 3), dtype=np.uint8), do_sample_frames=False, return_tensors="pt")
    assert every_frame["pixel_values"].shape[:2] == (1, 5)
    with pytest.raises(ValueError, match="same number of frames"):
        processor.preprocess_frames([np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8)])
