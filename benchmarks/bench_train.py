# SPDX-License-Identifier: Apache-2.0
"""Cost of MAXI's training objective and of gradient checkpointing, at ViT-B/16 size on CPU.

Sections (random weights, no download, float32):
  (a) the loss alone (forward + backward of ``text_bag_loss``, every variant, on random embeddings) at the paper's
      global batch B=256, bag N=16, D=512, vs one full training step (both encoders forward + backward, MIL-NCE,
      AdamW update) of a ViT-B/16 MaxiVideoCLIPModel at a small batch, extrapolated linearly to B=256.
      Goal: loss share < 1% of a step.
  (b) step time and peak RSS with gradient checkpointing on vs off (each configuration in a fresh process, so that
      ``resource.getrusage(...).ru_maxrss`` is that configuration's own peak).

Both process CPU time and wall-clock time are recorded (medians); on a shared machine the CPU times are the
trustworthy ones. Run from the repository root (about 5-10 min on 2 cores):

    python benchmarks/bench_train.py --batch_size 1 --num_frames 8 --repeats 2

The results replace the ``## bench_train`` section of ``benchmarks/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vit_b16_configs import CLIP_TEXT, VIT_B16_VISION  # noqa: E402  (benchmarks/ is on sys.path when run)

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel  # noqa: E402
from modeling_maxi.loss import mil_nce_loss, text_bag_loss  # noqa: E402

SECTION_NAME = "## bench_train"
TEXT_LENGTH = 16  # tokens per prompt ("a photo of a {class}. {verb}" is ~10-16 CLIP tokens)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=1, help="videos per measured training step")
    parser.add_argument("--num_frames", type=int, default=8, help="frames per video in the training step")
    parser.add_argument("--bag_size", type=int, default=16, help="texts per bag (paper: 16)")
    parser.add_argument("--loss_batch", type=int, default=256, help="global batch of the loss-alone timing")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per configuration (after one warm-up)")
    parser.add_argument("--loss_repeats", type=int, default=10, help="timed loss evaluations per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--results", default="benchmarks/RESULTS.md", help="markdown file to update")
    parser.add_argument("--no_write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--child_checkpointing", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "num_frames", "bag_size", "loss_batch", "repeats", "loss_repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def timed(fn) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def vit_b16_model() -> MaxiVideoCLIPModel:
    torch.manual_seed(0)
    config = MaxiVideoCLIPConfig(vision_config=VIT_B16_VISION, text_config=CLIP_TEXT, projection_dim=512)
    return MaxiVideoCLIPModel(config).train()


def loss_timings(args) -> dict[str, dict[str, float]]:
    """Forward + backward of each loss variant on random (B, D) videos and (B, N, D) bags."""
    gen = torch.Generator().manual_seed(0)
    batch, bag, dim = args.loss_batch, args.bag_size, 512
    video = torch.randn(batch, dim, generator=gen).requires_grad_()
    text = torch.randn(batch, bag, dim, generator=gen).requires_grad_()
    labels = torch.randint(0, 64, (batch,), generator=gen)
    scale = torch.tensor(50.0, requires_grad=True)
    results = {}
    for variant in ("mil_nce", "mil_nce_instance", "mil_nce_per_pair", "mil_max", "nce"):

        def run(variant=variant):
            text_bag_loss(video, text, labels, scale, variant).backward()

        run()
        samples = [timed(run) for _ in range(args.loss_repeats)]
        results[variant] = {
            "cpu": statistics.median(s[0] for s in samples),
            "wall": statistics.median(s[1] for s in samples),
        }
    return results


def child_step(args) -> None:
    """One configuration's training-step timing and peak RSS, printed as JSON (runs in its own process)."""
    model = vit_b16_model()
    if args.child_checkpointing == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-6)
    gen = torch.Generator().manual_seed(0)
    batch, bag = args.batch_size, args.bag_size
    pixel_values = torch.randn(batch, args.num_frames, 3, 224, 224, generator=gen)
    input_ids = torch.randint(1, 49000, (batch * bag, TEXT_LENGTH), generator=gen)
    input_ids[:, -1] = model.config.text_config.eos_token_id
    labels = torch.arange(batch)

    def step():
        outputs = model(input_ids=input_ids, pixel_values=pixel_values)
        text = outputs.text_embeds.reshape(batch, bag, -1)
        loss = mil_nce_loss(outputs.video_embeds, text, labels, model.logit_scale.exp())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    samples = [timed(step) for _ in range(args.repeats)]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "cpu": statistics.median(s[0] for s in samples),
                "wall": statistics.median(s[1] for s in samples),
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def step_timings(args) -> dict[str, dict[str, float]]:
    results = {}
    for mode in ("off", "on"):
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--child_checkpointing", mode,
            "--batch_size", str(args.batch_size),
            "--num_frames", str(args.num_frames),
            "--bag_size", str(args.bag_size),
            "--repeats", str(args.repeats),
            "--threads", str(args.threads),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    return results


def render(args, losses, steps) -> str:
    step_off = steps["off"]
    per_video_cpu = step_off["cpu"] / args.batch_size
    extrapolated_cpu = per_video_cpu * args.loss_batch
    lines = [
        SECTION_NAME,
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
        f"{args.threads} torch thread(s), CPU. ViT-B/16 MaxiVideoCLIPModel (random weights), training step = "
        f"{args.batch_size} video(s) x {args.num_frames} frames at 224 px + {args.batch_size * args.bag_size} "
        f"texts of {TEXT_LENGTH} tokens, forward + backward + AdamW. Command: `python benchmarks/bench_train.py "
        f"--batch_size {args.batch_size} --num_frames {args.num_frames} --repeats {args.repeats}`.",
        "",
        f"### (a) Loss alone at B={args.loss_batch}, N={args.bag_size}, D=512 vs a training step",
        "",
        f"Step CPU time per video: {per_video_cpu:.2f} s, so a B={args.loss_batch} step costs about "
        f"{extrapolated_cpu:.0f} CPU-s (linear extrapolation; {args.num_frames} frames per video).",
        "",
        "| Loss variant | forward+backward CPU ms | wall ms | share of a B=256 step | goal |",
        "|---|---|---|---|---|",
    ]
    for variant, timing in losses.items():
        share = timing["cpu"] / extrapolated_cpu
        lines.append(
            f"| {variant} | {timing['cpu'] * 1e3:.1f} | {timing['wall'] * 1e3:.1f} | {share:.4%} | "
            f"{'< 1% met' if share < 0.01 else '< 1% MISSED'} |"
        )
    lines += [
        "",
        "### (b) Gradient checkpointing",
        "",
        "| Checkpointing | step CPU s | step wall s | peak RSS MiB |",
        "|---|---|---|---|",
    ]
    for mode in ("off", "on"):
        timing = steps[mode]
        lines.append(f"| {mode} | {timing['cpu']:.2f} | {timing['wall']:.2f} | {timing['peak_rss_mib']:.0f} |")
    on, off = steps["on"], steps["off"]
    lines += [
        "",
        f"Checkpointing on/off: step CPU time x{on['cpu'] / off['cpu']:.2f}, peak RSS x"
        f"{on['peak_rss_mib'] / off['peak_rss_mib']:.2f} (RSS includes ~2.3 GiB of fp32 weights, gradients and "
        "AdamW state).",
        "",
    ]
    return "\n".join(lines)


def update_results(path: str, body: str) -> None:
    """Replace this benchmark's section of the results file (or append it), keeping every other section."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmark results\n"
    start = text.find(SECTION_NAME + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(SECTION_NAME))
        text = text[:start] + body + ("" if end == -1 else text[end + 1 :])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child_checkpointing is not None:
        child_step(args)
        return
    losses = loss_timings(args)
    steps = step_timings(args)
    body = render(args, losses, steps)
    if args.no_write:
        print(body)
    else:
        update_results(args.results, body)
        print(f"Updated {SECTION_NAME!r} in {args.results}:\n\n{body}")


if __name__ == "__main__":
    main()
