# SPDX-License-Identifier: Apache-2.0
"""What the text-bag benchmarks share: their common flags, a CLIP saved from a config, generated clips and writing
one section of `benchmarks/RESULTS.md`. Import it after putting the repository root on `sys.path`."""

import argparse
from pathlib import Path

import torch
from datasets import Dataset
from transformers import CLIPImageProcessor

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.text_bags.captioning import match_and_caption_videos_batch
from modeling_maxi.text_bags.stages import StageStore
from modeling_maxi.tokenizer_offline import build_offline_clip_tokenizer
from tests.helpers.videos import make_moving_square_frames, write_video

RESULTS = Path(__file__).with_name("RESULTS.md")


def add_stage_arguments(parser: argparse.ArgumentParser, **defaults) -> None:
    """The flags of a benchmark over generated clips (`defaults`: num_videos, batch_size, rounds, decode_workers,
    video_seconds) plus `--results` / `--no-write`."""
    parser.add_argument("--num-videos", type=int, default=defaults["num_videos"], help="generated clips per timed run")
    parser.add_argument("--num-frames", type=int, default=16, help="segment-sampled frames T per video")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="videos per model batch")
    parser.add_argument("--rounds", type=int, default=defaults["rounds"], help="timed rounds per variant")
    parser.add_argument(
        "--decode-workers", type=int, default=defaults["decode_workers"], help="decoding threads of the match stage"
    )
    parser.add_argument(
        "--video-seconds", type=float, default=defaults["video_seconds"], help="length of each 320x240 25 fps clip"
    )
    add_output_arguments(parser)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default=None, help="RESULTS.md to update (default: next to this script)")
    parser.add_argument("--no-write", action="store_true", help="print the section without writing it")


def check_stage_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, *extra: str) -> None:
    """Stop with argparse's error unless the counts (and the `extra` ones) are >= 1 and the clips last > 0 s."""
    for name in ("num_videos", "num_frames", "batch_size", "rounds", "decode_workers", *extra):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.video_seconds <= 0:
        parser.error(f"--video-seconds must be > 0, got {args.video_seconds}")


def publish_section(section: str, args: argparse.Namespace) -> str:
    """Print the section and, unless `--no-write`, put it into `--results` (default `benchmarks/RESULTS.md`)."""
    print(section)
    if not args.no_write:
        write_section(Path(args.results) if args.results else RESULTS, section)
    return section


def write_section(path: Path, section: str) -> None:
    """Replace the section starting with `section`'s first line (a `## name` heading) or append it."""
    heading = section.split("\n", 1)[0]
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    if heading + "\n" in text:
        head, _, rest = text.partition(heading + "\n")
        following = rest.find("\n## ")
        text = head + section + (rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def clip_video_processor(num_frames: int) -> MaxiVideoProcessor:
    """CLIP's 224 px image processing and its offline tokenizer, `num_frames` frames per video."""
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    return MaxiVideoProcessor(
        image_processor=image_processor, tokenizer=build_offline_clip_tokenizer(), num_frames=num_frames
    )


def save_clip(directory: Path, config: MaxiVideoCLIPConfig, num_frames: int) -> str:
    """A randomly initialised (seed 0) model of `config` and its processor, saved as a build loads them."""
    torch.manual_seed(0)
    MaxiVideoCLIPModel(config).save_pretrained(directory)
    clip_video_processor(num_frames).save_pretrained(directory)
    return str(directory)


def write_clips(directory: Path, count: int, seconds: float, size=(240, 320), fps: int = 25) -> list[str]:
    """`count` generated H.264 mp4 clips (moving squares, x264's default keyframes) of `seconds` at `size` (H, W)."""
    frames = int(seconds * fps)
    return [
        write_video(directory / f"clip_{i}.mp4", make_moving_square_frames(frames, size, seed=i), fps)
        for i in range(count)
    ]


def run_match_stage(
    stages_dir: Path, paths: list[str], match: dict, batch_size: int, decode_workers: int, backend: str = "auto"
) -> None:
    """The build's match stage over `paths` as one persisted chunk (`match`: the keyword arguments of
    `load_match_consumer`), as `run_match_stage` of the build maps it (captions off)."""
    store = StageStore(stages_dir, chunk_size=len(paths))
    store.run_map(
        "match",
        Dataset.from_dict({"video_path": paths}),
        match_and_caption_videos_batch,
        {"paths": len(paths)},
        desc="match",
        batch_size=store.chunk_size,
        with_rank=True,
        fn_kwargs={
            "match": match,
            "batch_size": batch_size,
            "decode_workers": decode_workers,
            "video_backend": backend,
        },
    )
