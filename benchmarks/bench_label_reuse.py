# SPDX-License-Identifier: Apache-2.0
"""Zero-shot classification among the 400 Kinetics-400 labels costs one vision pass per video: the label prompts are
encoded once per (model, labels, template) and reused (`modeling_maxi.zero_shot.label_embeddings`).

A ViT-B/16-sized MaxiVideoCLIPModel (random weights, no download, CPU, float32) classifies N decoded videos of T frames
(320x240 RGB) with the public API, `zero_shot_classify(model, processor, video, k400_labels)`, and the same videos'
preprocessed frames go through the vision pass alone, `model.get_video_features(pixel_values)`, side by side: for
every video and round the two are timed back to back, in alternating order, so that load from other processes hits
both alike. The per-video ratio API / vision pass is judged on process CPU time (one torch thread by default), the
reliable clock on a shared machine; target <= 1.05. The one-time encoding of the 400 prompts is reported too, with
the ratio a classifier that re-encoded them for every video would have. Run from the repository root:

    python benchmarks/bench_label_reuse.py --num_frames 8 --num_videos 8 --repeats 2

The results replace the ``## bench_label_reuse`` section of ``benchmarks/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_model import RATIO_HEADER, cpu_name, median_rows, ratio_row  # noqa: E402  (benchmarks/ is on sys.path)
from vit_b16_configs import CLIP_TEXT, VIT_B16_VISION  # noqa: E402

from modeling_maxi import (  # noqa: E402
    MaxiVideoCLIPConfig,
    MaxiVideoCLIPModel,
    MaxiVideoCLIPVideoProcessor,
    MaxiVideoProcessor,
    load_class_names,
    zero_shot_classify,
)
from modeling_maxi.tokenizer_offline import build_offline_clip_tokenizer  # noqa: E402
from modeling_maxi.zero_shot import label_embedding_cache, label_embeddings  # noqa: E402

SECTION_NAME = "## bench_label_reuse"
TARGET = 1.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_frames", type=int, default=8, help="frames T per video (the paper uses 16)")
    parser.add_argument("--num_videos", type=int, default=8, help="videos classified per round")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds over all videos")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is the reliable clock)")
    parser.add_argument("--results", default="benchmarks/RESULTS.md", help="markdown file to update")
    parser.add_argument("--no_write", action="store_true", help="print the section without updating --results")
    args = parser.parse_args(argv)
    for name in ("num_frames", "num_videos", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def build(num_frames: int) -> tuple[MaxiVideoCLIPModel, MaxiVideoProcessor]:
    torch.manual_seed(0)
    config = MaxiVideoCLIPConfig(vision_config=VIT_B16_VISION, text_config=CLIP_TEXT, projection_dim=512)
    processor = MaxiVideoProcessor(
        video_processor=MaxiVideoCLIPVideoProcessor(num_frames=num_frames), tokenizer=build_offline_clip_tokenizer()
    )
    return MaxiVideoCLIPModel(config).eval(), processor


def per_video_rows(times) -> list[str]:
    """`bench_model.median_rows`, whose last column here lists one call per (round, video)."""
    header, *rows = median_rows(times)
    return [header.replace("wall s per round", "wall s per call (round by round, video by video)"), *rows]


def timed(run, *args) -> tuple[float, float]:
    """CPU and wall-clock seconds of `run(*args)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def side_by_side(model, processor, videos, labels, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per video of the API and of the vision pass alone, each pair timed back to back."""
    pixel_values = [processor(videos=video)["pixel_values"] for video in videos]
    variants = {
        "api": lambda index: zero_shot_classify(model, processor, videos[index], labels, top_k=5),
        "vision_pass": lambda index: model.get_video_features(pixel_values=pixel_values[index]),
    }
    times = {name: {"cpu": [], "wall": []} for name in variants}
    for round_index in range(repeats):
        for index in range(len(videos)):
            names = list(variants) if (round_index + index) % 2 == 0 else list(variants)[::-1]
            for name in names:
                with torch.inference_mode():
                    cpu, wall = timed(variants[name], index)
                times[name]["cpu"].append(cpu)
                times[name]["wall"].append(wall)
            print(
                f"  round {round_index + 1}, video {index + 1}: "
                + ", ".join(f"{n} cpu {times[n]['cpu'][-1]:.2f}s" for n in variants),
                flush=True,
            )
    return times


def update_results(path: str, body: str) -> None:
    """Replaces (or appends) this script's section of `path`, leaving the others as they are."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmark results\n"
    section = f"{SECTION_NAME}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION_NAME)}\n.*?(?=^## |\Z)", flags=re.MULTILINE | re.DOTALL)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n")


def main(argv=None) -> str:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_label_reuse.py " + " ".join(sys.argv[1:] if argv is None else argv)
    model, processor = build(args.num_frames)
    labels = load_class_names("k400")
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (4 * args.num_frames, 240, 320, 3), dtype=np.uint8) for _ in range(args.num_videos)]

    # Warm-up (kernels, allocator) on one short video, then the one-time encoding of the 400 prompts, timed.
    model.get_video_features(pixel_values=processor(videos=videos[0], num_frames=2)["pixel_values"])
    encode_cpu, encode_wall = timed(label_embeddings, model, processor, labels)
    times = side_by_side(model, processor, videos, labels, args.repeats)
    assert label_embedding_cache(model).num_encoded == 1, "the label prompts were encoded more than once"

    vision_cpu = statistics.median(times["vision_pass"]["cpu"])
    load = os.getloadavg()
    body = [
        f"Command: `{command.strip()}` (run from the repository root)",
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {cpu_name()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} thread(s), load average at start {load[0]:.1f}.",
        "",
        f'ViT-B/16-sized MaxiVideoCLIPModel (random weights), {len(labels)} Kinetics-400 labels (`"a photo of a '
        f'{{}}."`), {args.num_videos} decoded 320x240 videos of {4 * args.num_frames} frames, T={args.num_frames} '
        f"frames sampled (the paper uses 16; fewer keep the run short on this machine), float32, "
        f"{args.repeats} rounds: each video's API call and vision pass timed back to back, alternating which goes "
        "first.",
        "",
        *per_video_rows(times),
        "",
        *RATIO_HEADER,
        ratio_row("per video: `zero_shot_classify` / vision pass alone", times, "api", "vision_pass", TARGET),
        "",
        f"The 400 prompts were encoded once, before the first video: {encode_cpu:.2f} s CPU ({encode_wall:.2f} s "
        f"wall), and reused by every call (`label_embedding_cache(model).num_encoded == 1` after "
        f"{args.num_videos * args.repeats} calls). Re-encoding them for every video would make a video cost "
        f"{(vision_cpu + encode_cpu) / vision_cpu:.2f}x the vision pass.",
    ]
    text = "\n".join(body)
    print("\n" + text)
    if not args.no_write:
        update_results(args.results, text)
        print(f"updated {args.results}")
    return text


if __name__ == "__main__":
    main()
