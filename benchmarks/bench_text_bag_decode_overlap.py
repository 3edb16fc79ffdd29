# SPDX-License-Identifier: Apache-2.0
"""Does the text-bag match stage overlap decoding with model compute? Measured side by side in one run.

On this CPU, with one decode worker (`--decode-workers 1`) and one model thread (`torch.set_num_threads(1)`), over
generated H.264 clips written with PyAV and a small CLIP built from a config (random weights, no download):

  decode-only  the decode worker's work alone, in one thread: 16 segment-sampled frames per video decoded
               (`read_video_frame_sets`) and prepared (CLIP image processing), as `frame_pass` does per video;
  model-only   the model's work alone on those prepared frames: encoder, mean pooling, dictionary similarity, top-5;
  stage        the match stage as the build runs it (`StageStore.run_map` over `match_and_caption_videos_batch`:
               `Dataset.map`, the prefetching frame pass, the persisted chunk) with `--decode-workers` threads;
  inline       the same stage with decode_workers=0 (decode, then compute, in turn: the build before prefetching);
  control      decode-only in a forked process while model-only runs in this one: the overlap the machine allows at
               that moment (on a shared machine other jobs may leave less than the two cores it needs).

It prints the ratio stage / min(decode-only, model-only); target >= 0.9. The model's size (`--vision-layers`,
`--vision-width`) is chosen so that decode and model cost are comparable, where overlap matters most. The variants
alternate (order reversed every round) so that load from other processes hits all alike; medians are reported.

    python benchmarks/bench_text_bag_decode_overlap.py --num-videos 24 --rounds 3

The results replace the ``## bench_text_bag_decode_overlap`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_common as common  # noqa: E402  (benchmarks/ is on sys.path when run)
from datasets import disable_progress_bars  # noqa: E402

from modeling_maxi import MaxiVideoCLIPConfig  # noqa: E402
from modeling_maxi.text_bags.frame_pass import decode_and_prepare  # noqa: E402
from modeling_maxi.text_bags.matching import load_match_consumer, save_class_embeddings  # noqa: E402

SECTION_NAME = "## bench_text_bag_decode_overlap"
NUM_CLASSES = 400
VARIANTS = ("decode", "model", "stage", "inline", "parallel")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_stage_arguments(parser, num_videos=24, batch_size=4, rounds=3, decode_workers=1, video_seconds=4.0)
    parser.add_argument("--vision-layers", type=int, default=1, help="layers of the small CLIP's vision tower")
    parser.add_argument("--vision-width", type=int, default=128, help="width of the small CLIP's vision tower")
    parser.add_argument("--video-backend", default="auto", help="decoder (auto, decord, pyav...)")
    args = parser.parse_args(argv)
    common.check_stage_arguments(parser, args, "vision_layers")
    if args.vision_width < 64 or args.vision_width % 64:
        parser.error(f"--vision-width must be a positive multiple of 64, got {args.vision_width}")
    return args


def save_small_clip(directory: Path, args) -> str:
    vision = {"hidden_size": args.vision_width, "intermediate_size": 4 * args.vision_width}
    vision.update(num_hidden_layers=args.vision_layers, num_attention_heads=args.vision_width // 64)
    vision.update(image_size=224, patch_size=16)
    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 1}
    config = MaxiVideoCLIPConfig(vision_config=vision, text_config=text, projection_dim=64)
    return common.save_clip(directory, config, args.num_frames)


def timed(function) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - cpu


def run_stage(work: Path, label: str, paths: list[str], match: dict, args, decode_workers: int) -> None:
    common.run_match_stage(work / f"stages_{label}", paths, match, args.batch_size, decode_workers, args.video_backend)


def measure(args, work: Path, paths: list[str], match: dict) -> dict[str, list[tuple[float, float]]]:
    consumer = load_match_consumer(**match)
    load = lambda: [decode_and_prepare(path, [consumer], args.video_backend) for path in paths]  # noqa: E731
    prepared = [item[0][0] for item in load()]
    batches = [prepared[start : start + args.batch_size] for start in range(0, len(prepared), args.batch_size)]
    counter = iter(range(10**6))

    def parallel():  # the control: decode-only in a forked process while the model runs here (no GIL, no pool)
        process = multiprocessing.get_context("fork").Process(target=load)
        process.start()
        actions["model"]()
        process.join()

    actions = {
        "decode": load,
        "model": lambda: [consumer.compute(batch) for batch in batches],
        "stage": lambda: run_stage(work, f"stage_{next(counter)}", paths, match, args, args.decode_workers),
        "inline": lambda: run_stage(work, f"inline_{next(counter)}", paths, match, args, 0),
        "parallel": parallel,
    }
    for name in VARIANTS:  # warm-up: first-call allocations, decoder libraries, datasets
        if name == "parallel":
            continue
        if name in ("stage", "inline"):
            run_stage(work, f"warm_{name}", paths[: args.batch_size], match, args, 0)
        else:
            actions[name]()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds):
        for name in VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]:
            times[name].append(timed(actions[name]))
    return times


def command_line(argv) -> str:
    return " ".join(["python benchmarks/bench_text_bag_decode_overlap.py", *(sys.argv[1:] if argv is None else argv)])


def main(argv=None) -> str:
    args = parse_args(argv)
    disable_progress_bars()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = save_small_clip(work / "small_clip", args)
        paths = common.write_clips(work, args.num_videos, args.video_seconds)
        embeddings_path = str(work / "class_embeddings.safetensors")
        save_class_embeddings(embeddings_path, torch.nn.functional.normalize(torch.randn(NUM_CLASSES, 64), dim=-1))
        match = {
            "model_name_or_path": model_dir,
            "class_embeddings_path": embeddings_path,
            "class_names": [f"class {i}" for i in range(NUM_CLASSES)],
            "num_frames": args.num_frames,
        }
        times = measure(args, work, paths, match)
    rates = {name: args.num_videos / statistics.median(wall for wall, _ in values) for name, values in times.items()}
    best = {name: args.num_videos / min(wall for wall, _ in values) for name, values in times.items()}
    ratio = rates["stage"] / min(rates["decode"], rates["model"])
    best_ratio = best["stage"] / min(best["decode"], best["model"])
    inline_ratio = rates["inline"] / min(rates["decode"], rates["model"])
    inline_best = best["inline"] / min(best["decode"], best["model"])
    control_ratio = rates["parallel"] / min(rates["decode"], rates["model"])
    control_best = best["parallel"] / min(best["decode"], best["model"])
    described = {
        "decode": "decode-only: decode + CLIP image processing, one thread",
        "model": "model-only: encoder + pooling + similarity + top-5 on prepared frames",
        "stage": f"match stage, {args.decode_workers} decode worker(s) prefetching",
        "inline": "match stage, decode_workers=0 (decode and compute in turn)",
        "parallel": "control: decode-only in a forked process while model-only runs (the overlap this machine allows)",
    }
    lines = [
        SECTION_NAME,
        "",
        f"Run {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} on CPU ({os.cpu_count()} cores, "
        f"shared; load average at the end {os.getloadavg()[0]:.1f}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread, backend {args.video_backend}.",
        f"Command: `{command_line(argv)}`",
        "",
        f"{args.num_videos} generated H.264 320x240 clips of {args.video_seconds:g} s, {args.num_frames} frames per "
        f"video at 224 px, CLIP vision tower {args.vision_layers} layer(s) x {args.vision_width} wide (random "
        f"weights), {NUM_CLASSES} classes, batch {args.batch_size}, {args.rounds} interleaved rounds.",
        "",
        "| measurement | videos/s (median round) | videos/s (best round) | wall s / CPU s per round |",
        "| --- | --- | --- | --- |",
        *(
            f"| {described[name]} | {rates[name]:.2f} | {best[name]:.2f} | "
            f"{', '.join(f'{wall:.2f}/{cpu:.2f}' for wall, cpu in times[name])} |"
            for name in VARIANTS
        ),
        f"| **ratio stage / min(decode-only, model-only)** (target >= 0.9) | **{ratio:.3f}** | **{best_ratio:.3f}** "
        "| |",
        f"| ratio inline stage / min(decode-only, model-only) | {inline_ratio:.3f} | {inline_best:.3f} | |",
        f"| ratio control / min(decode-only, model-only) | {control_ratio:.3f} | {control_best:.3f} | |",
        f"| ratio stage / control | {rates['stage'] / rates['parallel']:.3f} | {best['stage'] / best['parallel']:.3f} "
        "| |",
    ]
    return common.publish_section("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    main()
