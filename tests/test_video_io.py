# SPDX-License-Identifier: Apache-2.0
import logging
import pickle

import av
import numpy as np
import pytest
import torch

from modeling_maxi import video_io
from modeling_maxi.video_io import (
    BACKENDS,
    VideoDecodeError,
    available_backends,
    read_video_frames,
    sample_frame_indices,
)
from tests.helpers.videos import (
    decode_frame_index,
    make_moving_square_frames,
    write_corrupt_video,
    write_empty_video,
    write_video,
)

NUM_SOURCE_FRAMES = 40
SIZE = (64, 96)


def identities(frames):
    return [decode_frame_index(frame) for frame in frames]


@pytest.fixture(scope="module")
def source_frames():
    return make_moving_square_frames(NUM_SOURCE_FRAMES, SIZE, seed=3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, source_frames):
    """Real H.264 files: one keyframe only, a keyframe every 8 frames (seekable), other containers, a short clip."""
    root = tmp_path_factory.mktemp("videos")
    paths = {
        "mp4": write_video(root / "one_gop.mp4", source_frames),
        "mp4_gop8": write_video(root / "gop8.mp4", source_frames, gop_size=8),
        "mkv": write_video(root / "clip.mkv", source_frames, gop_size=8),
        "ts": write_video(root / "clip.ts", source_frames, gop_size=8),
        "avi": write_video(root / "clip.avi", source_frames, gop_size=8),
        "h264": write_video(root / "clip.h264", source_frames),
        "short": write_video(root / "short.mp4", make_moving_square_frames(5, SIZE, seed=4)),
    }
    return paths


# ------------------------------------------------------------------------------------------------------------
# sample_frame_indices
# ------------------------------------------------------------------------------------------------------------


def test_segment_eval_takes_segment_centres():
    assert sample_frame_indices(40, 8) == [2, 7, 12, 17, 22, 27, 32, 37]
    assert sample_frame_indices(10, 4, "segment") == [1, 3, 6, 8]
    assert sample_frame_indices(16, 16) == list(range(16))
    assert sample_frame_indices(7, 1) == [3]


def test_segment_indices_stay_inside_their_segment_for_all_sizes():
    rng = np.random.default_rng(0)
    for total in range(1, 61):
        for num in range(1, 21):
            eval_indices = sample_frame_indices(total, num)
            train_indices = sample_frame_indices(total, num, training=True, generator=rng)
            for indices in (eval_indices, train_indices):
                assert len(indices) == num
                assert indices == sorted(indices)
                assert all(isinstance(i, int) and 0 <= i < total for i in indices)
                for t, index in enumerate(indices):
                    # segment t is [t * total / num, (t + 1) * total / num): only frames overlapping it qualify
                    first, last = t * total // num, -(-(t + 1) * total // num) - 1
                    assert first <= index <= last, (total, num, t, index)
            if total % num == 0:  # segments are whole frames, so the frames are distinct
                assert len(set(train_indices)) == num


def test_segment_training_offsets_cover_each_segment_and_are_seeded():
    rng = np.random.default_rng(1)
    draws = np.array([sample_frame_indices(80, 4, training=True, generator=rng) for _ in range(400)])
    for t in range(4):
        assert set(draws[:, t].tolist()) == set(range(20 * t, 20 * (t + 1)))
    first = sample_frame_indices(1000, 16, training=True, generator=np.random.default_rng(7))
    again = sample_frame_indices(1000, 16, training=True, generator=np.random.default_rng(7))
    other = sample_frame_indices(1000, 16, training=True, generator=np.random.default_rng(8))
    assert first == again
    assert first != other
    assert first != sample_frame_indices(1000, 16)


def test_segment_training_accepts_torch_generator():
    first = sample_frame_indices(500, 8, training=True, generator=torch.Generator().manual_seed(3))
    again = sample_frame_indices(500, 8, training=True, generator=torch.Generator().manual_seed(3))
    other = sample_frame_indices(500, 8, training=True, generator=torch.Generator().manual_seed(4))
    assert first == again != other
    unseeded = sample_frame_indices(500, 8, training=True)
    assert all(62 * t <= i < 63 * (t + 1) for t, i in enumerate(unseeded))


def test_eval_sampling_does_not_consume_the_generator():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    sample_frame_indices(100, 8, training=False, generator=rng)
    assert rng.bit_generator.state == state


def test_uniform_is_evenly_spaced_from_first_to_last_frame():
    assert sample_frame_indices(30, 7, "uniform") == [0, 5, 10, 15, 19, 24, 29]
    assert sample_frame_indices(9, 5, "uniform") == [0, 2, 4, 6, 8]
    assert sample_frame_indices(100, 2, "uniform") == [0, 99]
    assert sample_frame_indices(9, 1, "uniform") == [4]
    expected = np.floor(np.linspace(0, 250 - 1, 8) + 0.5).astype(int).tolist()
    assert sample_frame_indices(250, 8, "uniform") == expected
    # training changes nothing for uniform sampling
    assert sample_frame_indices(30, 7, "uniform", training=True, generator=np.random.default_rng(0)) == [
        0,
        5,
        10,
        15,
        19,
        24,
        29,
    ]


def test_fewer_frames_than_requested_repeat_in_order():
    assert sample_frame_indices(2, 4) == [0, 0, 1, 1]
    assert sample_frame_indices(3, 5, "uniform") == [0, 1, 1, 2, 2]
    assert sample_frame_indices(1, 6) == [0] * 6
    assert sample_frame_indices(1, 6, "uniform") == [0] * 6
    train = sample_frame_indices(3, 8, training=True, generator=np.random.default_rng(0))
    assert train == sorted(train) and set(train) == {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"total_frames": 0}, ValueError, "total_frames must be >= 1, got 0"),
        ({"total_frames": 10.0}, TypeError, "total_frames must be an int, got 10.0"),
        ({"total_frames": True}, TypeError, "total_frames must be an int"),
        ({"num_frames": 0}, ValueError, "num_frames must be >= 1, got 0"),
        ({"num_frames": "8"}, TypeError, "num_frames must be an int, got '8'"),
        ({"strategy": "random"}, ValueError, "strategy must be one of .* got 'random'"),
        ({"training": "yes"}, TypeError, "training must be a bool, got 'yes'"),
        ({"generator": 42, "training": True}, TypeError, "generator must be None, .* got int"),
    ],
)
def test_sample_frame_indices_validates_arguments(kwargs, error, message):
    arguments = {"total_frames": 10, "num_frames": 4, **kwargs}
    with pytest.raises(error, match=message):
        sample_frame_indices(**arguments)


def test_numpy_integers_are_accepted():
    assert sample_frame_indices(np.int64(40), np.int32(8)) == [2, 7, 12, 17, 22, 27, 32, 37]


# ------------------------------------------------------------------------------------------------------------
# read_video_frames on real files
# ------------------------------------------------------------------------------------------------------------


def test_available_backends():
    backends = available_backends()
    assert "pyav" in backends
    assert backends == [name for name in BACKENDS if name in backends]


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
@pytest.mark.parametrize("name", ["mp4", "mp4_gop8"])
@pytest.mark.parametrize("strategy", ["segment", "uniform"])
def test_backends_return_the_sampled_frames(videos, source_frames, backend, name, strategy):
    frames = read_video_frames(videos[name], 8, strategy=strategy, backend=backend)
    assert frames.dtype == np.uint8
    assert frames.shape == (8, *SIZE, 3)
    assert frames.flags["C_CONTIGUOUS"]
    expected = sample_frame_indices(NUM_SOURCE_FRAMES, 8, strategy)
    assert identities(frames) == expected
    # RGB (not BGR) and close to what was encoded.
    error = np.abs(frames.astype(np.int16) - source_frames[expected].astype(np.int16))
    assert error.mean() < 4.0, error.mean()
    swapped = np.abs(frames[..., ::-1].astype(np.int16) - source_frames[expected].astype(np.int16))
    assert swapped.mean() > 2 * error.mean()


def test_all_backends_agree_on_the_same_file(videos):
    results = {name: read_video_frames(videos["mp4_gop8"], 16, backend=name) for name in available_backends()}
    reference = results["pyav"].astype(np.int16)
    for name, frames in results.items():
        assert frames.shape == reference.shape, name
        difference = np.abs(frames.astype(np.int16) - reference)
        assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 8, (name, difference.mean())


@pytest.mark.parametrize("backend", available_backends())
def test_training_sampling_is_seeded_and_same_across_backends(videos, backend):
    frames = read_video_frames(
        videos["mp4_gop8"], 6, backend=backend, training=True, generator=np.random.default_rng(11)
    )
    expected = sample_frame_indices(NUM_SOURCE_FRAMES, 6, training=True, generator=np.random.default_rng(11))
    assert identities(frames) == expected
    torch_frames = read_video_frames(
        videos["mp4_gop8"], 6, backend=backend, training=True, generator=torch.Generator().manual_seed(2)
    )
    expected = sample_frame_indices(NUM_SOURCE_FRAMES, 6, training=True, generator=torch.Generator().manual_seed(2))
    assert identities(torch_frames) == expected


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_short_video_repeats_frames_in_order(videos, backend):
    frames = read_video_frames(videos["short"], 12, backend=backend)
    assert frames.shape == (12, *SIZE, 3)
    assert identities(frames) == sample_frame_indices(5, 12) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    assert np.array_equal(frames[0], frames[1])


@pytest.mark.parametrize("name", ["mkv", "ts", "avi", "h264"])
@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_other_containers_give_the_right_frames_or_a_clear_error(videos, name, backend, caplog):
    # These files have a keyframe every 8 frames and B-frames. AVI stores decode-order timestamps, raw .h264 none
    # at all. decord's and torchcodec's seeking return wrong frames in TS and AVI files: decord must read AVI
    # sequentially and decline TS / raw streams, torchcodec decline all three (auto then moves on).
    declined = {"decord": ("ts", "h264"), "torchcodec": ("ts", "avi", "h264")}
    if name in declined.get(backend, ()):
        with pytest.raises(VideoDecodeError, match=f"{backend}.*not reliable here"):
            read_video_frames(videos[name], 7, backend=backend)
        return
    for strategy in ("segment", "uniform"):
        with caplog.at_level(logging.WARNING, logger="modeling_maxi.video_io"):
            frames = read_video_frames(videos[name], 7, strategy=strategy, backend=backend)
        assert identities(frames) == sample_frame_indices(NUM_SOURCE_FRAMES, 7, strategy), (name, strategy)
    assert not caplog.records  # a backend declining a container by design is not worth a warning


def test_pyav_seeking_matches_sequential_decoding(videos):
    path = videos["mp4_gop8"]
    with av.open(path) as container:
        count, timestamps, keyframes = video_io._pyav_demux_index(container, path)
    assert count == NUM_SOURCE_FRAMES
    assert keyframes == [0, 8, 16, 24, 32]
    rng = np.random.default_rng(0)
    for _ in range(6):
        wanted = sorted(set(rng.choice(NUM_SOURCE_FRAMES, size=5, replace=False).tolist()))
        with av.open(path) as container:
            video_io._pyav_demux_index(container, path)  # decoding follows the demuxing pass in one opening
            seeked = video_io._pyav_decode_with_seeks(container, wanted, timestamps, keyframes)
        sequential, _ = video_io._pyav_decode_sequential(av, path, wanted)
        assert sorted(seeked) == sorted(sequential) == wanted
        for index in wanted:
            assert decode_frame_index(seeked[index]) == index
            assert np.array_equal(seeked[index], sequential[index])


def test_pyav_counts_frames_when_timestamps_are_unusable(videos, monkeypatch):
    # Overstated packet count (as with a damaged tail): decoding finds the real number of frames and resamples.
    monkeypatch.setattr(video_io, "_pyav_demux_index", lambda container, path: (60, None, []))
    frames = read_video_frames(videos["mp4"], 8, backend="pyav")
    assert identities(frames) == sample_frame_indices(NUM_SOURCE_FRAMES, 8)


class OpenCounter:
    """Wraps a decoder's opening function (`av.open`, `decord.VideoReader`) to count the openings per file."""

    def __init__(self, original):
        self.original, self.paths = original, []

    def __call__(self, path, *args, **kwargs):
        self.paths.append(str(path))
        return self.original(path, *args, **kwargs)


def backend_opener(backend):
    """(module, attribute) of the function that opens a file in `backend`."""
    if backend == "pyav":
        return av, "open"
    import decord

    return decord, "VideoReader"


@pytest.mark.parametrize("backend", [name for name in available_backends() if name in ("pyav", "decord")])
@pytest.mark.parametrize("name", ["mp4", "mp4_gop8", "short"])
def test_frame_sets_come_from_one_opening_of_the_file(videos, backend, name, monkeypatch):
    module, attribute = backend_opener(backend)
    counter = OpenCounter(getattr(module, attribute))
    monkeypatch.setattr(module, attribute, counter)
    path = videos[name]
    match_frames, caption_frames = video_io.read_video_frame_sets(
        path, [(16, "segment"), (8, "uniform")], backend=backend
    )
    assert counter.paths == [str(path)]
    total = NUM_SOURCE_FRAMES if name != "short" else 5
    assert identities(match_frames) == sample_frame_indices(total, 16, "segment")
    assert identities(caption_frames) == sample_frame_indices(total, 8, "uniform")
    monkeypatch.setattr(module, attribute, counter.original)
    assert np.array_equal(caption_frames, read_video_frames(path, 8, strategy="uniform", backend=backend))
    assert match_frames.shape == (16, *SIZE, 3) and caption_frames.flags["C_CONTIGUOUS"]


def test_frame_sets_draw_training_offsets_in_request_order(videos):
    first, second = video_io.read_video_frame_sets(
        videos["mp4_gop8"], [(4, "segment"), (6, "segment")], training=True, generator=np.random.default_rng(5)
    )
    rng = np.random.default_rng(5)
    assert identities(first) == sample_frame_indices(NUM_SOURCE_FRAMES, 4, training=True, generator=rng)
    assert identities(second) == sample_frame_indices(NUM_SOURCE_FRAMES, 6, training=True, generator=rng)


@pytest.mark.parametrize(
    "requests, error, message",
    [
        ([], ValueError, "non-empty sequence of \\(num_frames, strategy\\) pairs, got \\[\\]"),
        ("segment", ValueError, "non-empty sequence"),
        ([(4, "segment", 1)], ValueError, "a \\(num_frames, strategy\\) pair, got \\(4, 'segment', 1\\)"),
        ([(4, "segment"), (0, "uniform")], ValueError, "num_frames must be >= 1, got 0"),
        ([(4, "dense")], ValueError, "strategy must be one of .* got 'dense'"),
    ],
)
def test_frame_sets_validate_the_requests(videos, requests, error, message):
    with pytest.raises(error, match=message):
        video_io.read_video_frame_sets(videos["mp4"], requests)


def test_auto_falls_back_with_the_same_random_draw(videos, monkeypatch, caplog):
    def failing_reader(path, pick):
        pick(1000)  # consumes the generator before failing, as a real backend would
        raise VideoDecodeError(path, "decord", "simulated failure")

    monkeypatch.setitem(video_io._READERS, "decord", failing_reader)
    monkeypatch.setattr(video_io, "available_backends", lambda: ["decord", "pyav"])
    rng = np.random.default_rng(21)
    with caplog.at_level(logging.WARNING, logger="modeling_maxi.video_io"):
        frames = read_video_frames(videos["mp4"], 5, training=True, generator=rng)
    expected = sample_frame_indices(NUM_SOURCE_FRAMES, 5, training=True, generator=np.random.default_rng(21))
    assert identities(frames) == expected
    assert "simulated failure" in caplog.text
    # The generator advanced by exactly one draw, as if only one backend had been used.
    reference = np.random.default_rng(21)
    reference.random(5)
    assert rng.random() == reference.random()


# ------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
def test_missing_file_raises_file_not_found(tmp_path, backend):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video_frames(tmp_path / "missing.mp4", 4, backend=backend)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        read_video_frames(tmp_path, 4)


BROKEN = {
    "garbage": lambda path: write_corrupt_video(path, "garbage"),
    "truncated": lambda path: write_corrupt_video(path, "truncated"),
    "zero_bytes": lambda path: write_empty_video(path, "zero_bytes"),
    "no_frames": lambda path: write_empty_video(path, "no_frames"),
    "audio_only": lambda path: write_empty_video(path, "audio_only"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("backend", available_backends())
def test_broken_files_raise_video_decode_error_naming_file_and_backend(tmp_path, kind, backend):
    path = BROKEN[kind](tmp_path / f"{kind}.mp4")
    with pytest.raises(VideoDecodeError) as info:
        read_video_frames(path, 4, backend=backend)
    error = info.value
    assert isinstance(error, RuntimeError)
    assert error.path == str(path) and error.backend == backend
    assert str(path) in str(error) and backend in str(error)


@pytest.mark.parametrize("kind", list(BROKEN))
def test_auto_reports_every_backend_tried(tmp_path, kind):
    path = BROKEN[kind](tmp_path / f"{kind}.mp4")
    with pytest.raises(VideoDecodeError) as info:
        read_video_frames(path, 4)
    error = info.value
    assert list(error.attempts) == available_backends()
    assert error.backend == available_backends()[-1]
    for name in available_backends():
        assert name in str(error)


def test_video_decode_error_pickles():
    error = VideoDecodeError("/data/a.mp4", "pyav", "bad data", {"decord": "x", "pyav": "bad data"})
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.path, clone.backend, clone.reason, clone.attempts) == (
        error.path,
        error.backend,
        error.reason,
        error.attempts,
    )
    assert str(clone) == str(error)


# ------------------------------------------------------------------------------------------------------------
# Argument validation and backend availability
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_frames": 0}, ValueError, "num_frames must be >= 1, got 0"),
        ({"num_frames": 2.5}, TypeError, "num_frames must be an int, got 2.5"),
        ({"num_frames": True}, TypeError, "num_frames must be an int, got True"),
        ({"strategy": "dense"}, ValueError, "strategy must be one of .* got 'dense'"),
        ({"backend": "ffmpeg"}, ValueError, "backend must be 'auto' or one of .* got 'ffmpeg'"),
        ({"training": 1}, TypeError, "training must be a bool, got 1"),
        ({"generator": 3}, TypeError, "generator must be None, .* got int"),
        ({"path": 17}, TypeError, "path must be a str or os.PathLike, got 17"),
    ],
)
def test_read_video_frames_validates_arguments(videos, kwargs, error, message):
    arguments = {"path": videos["mp4"], "num_frames": 4, **kwargs}
    with pytest.raises(error, match=message):
        read_video_frames(**arguments)


def test_unloadable_backend_is_unavailable_and_named_in_the_error(videos, monkeypatch):
    def broken_probe():
        raise OSError("libavutil.so.59: cannot open shared object file")

    monkeypatch.setitem(video_io._PROBES, "torchcodec", broken_probe)
    video_io._backend_unavailable_reason.cache_clear()
    try:
        assert "torchcodec" not in available_backends()
        with pytest.raises(ImportError, match="'torchcodec' is not available .*libavutil"):
            read_video_frames(videos["mp4"], 4, backend="torchcodec")
        # auto skips it and still decodes
        assert read_video_frames(videos["mp4"], 4).shape == (4, *SIZE, 3)
    finally:
        video_io._backend_unavailable_reason.cache_clear()


def test_missing_module_is_unavailable(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "decord", None)
    video_io._backend_unavailable_reason.cache_clear()
    try:
        assert "decord" not in available_backends()
        assert "pyav" in available_backends()
    finally:
        video_io._backend_unavailable_reason.cache_clear()


# ------------------------------------------------------------------------------------------------------------
# Test helpers themselves
# ------------------------------------------------------------------------------------------------------------


def test_generated_frames_are_distinct_and_self_identifying():
    frames = make_moving_square_frames(12, (48, 80), seed=0)
    assert frames.shape == (12, 48, 80, 3) and frames.dtype == np.uint8
    assert identities(frames) == list(range(12))
    assert len({frame.tobytes() for frame in frames}) == 12
    assert np.array_equal(frames, make_moving_square_frames(12, (48, 80), seed=0))


def test_video_helpers_validate_inputs(tmp_path):
    with pytest.raises(ValueError, match="even"):
        make_moving_square_frames(4, (49, 80), seed=0)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 48, 81, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 48, 80, 3), dtype=np.float32))
