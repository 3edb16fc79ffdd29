# SPDX-License-Identifier: Apache-2.0
"""Speed of the text-bag match stage, measured side by side with the bare vision encoder in one run.

Sections (ViT-B/16-sized MaxiVideoCLIPModel with random weights, no download, float32 on CPU / float16 on GPU):
  (a) videos/s of the match stage (`StageStore.run_map` over `match_and_caption_videos_batch` as the build maps it:
      `Dataset.map`, decoding threads prefetching T segment-sampled frames from H.264 files with CLIP image
      processing, encoder, mean pooling, dictionary similarity, top-5, persisted chunk) vs videos/s of
      `get_video_features` alone on the same videos already decoded and preprocessed. Goal: ratio >= 0.8.
  (b) one-time cost of the dictionary encoding: 400 K400 classes x 28 prompt templates through the text tower with
      prompt ensembling (`encode_dictionary`).

Timings alternate between the two variants (the order reversed every round) so that load from other processes hits
both alike; the median over rounds is reported. Run from the repository root:

    python benchmarks/bench_text_bags.py --num-videos 8 --rounds 2

The results replace the ``## bench_text_bags`` section of ``benchmarks/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
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
from vit_b16_configs import CLIP_TEXT, VIT_B16_VISION  # noqa: E402

from modeling_maxi import MaxiVideoCLIPConfig  # noqa: E402
from modeling_maxi.dictionaries import load_class_names, load_prompt_templates  # noqa: E402
from modeling_maxi.text_bags.matching import (  # noqa: E402
    decode_videos,
    device_for_rank,
    encode_dictionary,
    load_match_model,
    save_class_embeddings,
)

SECTION_NAME = "## bench_text_bags"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_stage_arguments(parser, num_videos=8, batch_size=4, rounds=2, decode_workers=4, video_seconds=5.0)
    parser.add_argument("--skip-dictionary", action="store_true", help="skip the 400x28 dictionary encoding")
    args = parser.parse_args(argv)
    common.check_stage_arguments(parser, args)
    return args


def save_vit_b16(directory: Path, num_frames: int) -> str:
    # the frames per video are the processor's setting, not the model config's
    config = MaxiVideoCLIPConfig(vision_config=VIT_B16_VISION, text_config=CLIP_TEXT, projection_dim=512)
    return common.save_clip(directory, config, num_frames)


def time_match_stage(args, work: Path, round_index: int, model_dir: str, embeddings: str, names, paths) -> float:
    match = {"model_name_or_path": model_dir, "class_embeddings_path": embeddings, "class_names": names}
    match.update(num_frames=args.num_frames, dtype="float16")
    start = time.perf_counter()
    common.run_match_stage(work / f"stages_{round_index}", paths, match, args.batch_size, args.decode_workers)
    return time.perf_counter() - start


@torch.no_grad()
def time_bare_encoder(model, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    for pixel_values in batches:
        model.get_video_features(pixel_values=pixel_values)
    if pixel_values.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> str:
    args = parse_args(argv)
    disable_progress_bars()
    device = device_for_rank(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = save_vit_b16(work / "vit_b16", args.num_frames)
        paths = common.write_clips(work, args.num_videos, args.video_seconds)
        load_start = time.perf_counter()
        model, processor = load_match_model(model_dir, str(device), "float16")
        load_seconds = time.perf_counter() - load_start

        names = load_class_names("k400")
        templates = load_prompt_templates()
        dictionary_seconds = None
        if args.skip_dictionary:
            embeddings = torch.nn.functional.normalize(torch.randn(len(names), 512), dim=-1)
        else:
            start = time.perf_counter()
            embeddings = encode_dictionary(model, processor, names, templates)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dictionary_seconds = time.perf_counter() - start
        embeddings_path = str(work / "class_embeddings.safetensors")
        save_class_embeddings(embeddings_path, embeddings)

        frames, _ = decode_videos(paths, args.num_frames, "segment")
        batches = [
            processor.preprocess_frames(frames[i : i + args.batch_size]).to(device=device, dtype=model.dtype)
            for i in range(0, len(frames), args.batch_size)
        ]
        # Warm-up of both paths (first-call allocations, decoder libraries).
        time_bare_encoder(model, batches[:1])
        time_match_stage(args, work, -1, model_dir, embeddings_path, names, paths[: args.batch_size])

        match_times, bare_times = [], []
        for round_index in range(args.rounds):
            order = ("match", "bare") if round_index % 2 == 0 else ("bare", "match")
            for variant in order:
                if variant == "match":
                    match_times.append(
                        time_match_stage(args, work, round_index, model_dir, embeddings_path, names, paths)
                    )
                else:
                    bare_times.append(time_bare_encoder(model, batches))

    match_rate = args.num_videos / statistics.median(match_times)
    bare_rate = args.num_videos / statistics.median(bare_times)
    hardware = f"CPU, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    lines = [
        SECTION_NAME,
        "",
        f"Run {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {hardware}, "
        f"dtype {model.dtype}, torch {torch.__version__}.",
        f"Command: `python benchmarks/bench_text_bags.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"ViT-B/16-sized MaxiVideoCLIPModel (random weights), {args.num_videos} generated H.264 320x240 clips of "
        f"{args.video_seconds:g} s, T={args.num_frames}, batch {args.batch_size}, {args.rounds} rounds (median).",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| match stage (decode + preprocess + encode + match + persist) | {match_rate:.3f} videos/s |",
        f"| bare `get_video_features` on pre-decoded, preprocessed frames | {bare_rate:.3f} videos/s |",
        f"| ratio match / bare (goal >= 0.8) | {match_rate / bare_rate:.3f} |",
        f"| model load (once per process) | {load_seconds:.2f} s |",
    ]
    if dictionary_seconds is not None:
        lines.append(
            f"| dictionary encoding, {len(names)} classes x {len(templates)} templates (once per build) | "
            f"{dictionary_seconds:.2f} s |"
        )
    return common.publish_section("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    main()
