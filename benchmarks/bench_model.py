# SPDX-License-Identifier: Apache-2.0
"""Speed of MaxiVideoCLIPModel and of the video reader, as ratios measured side by side in one run.

Sections (ViT-B/16-sized configs with random weights, no download, CPU, float32, one video of T frames):
  (a) ``MaxiVideoCLIPModel.get_video_features`` on (1, T, 3, 224, 224) vs ``CLIPModel.get_image_features`` on the same
      T frames batched as T images (same weights). Target <= 1.03.
  (b) cross-frame attention on the last 2 / last 6 vision layers vs off. Target <= 1.05 for 2 layers.
  (c) sdpa vs eager attention.
  (d) per-video encoding time vs transformers' ``XCLIPModel`` (base config with patch 16 and ``num_frames=T``,
      random weights), both through ``get_video_features``. Target <= 0.9.
  (e) sampling 16 frames of a generated 10 s 320x240 25 fps H.264 clip with ``read_video_frames`` per backend vs a
      full PyAV decode of every frame to RGB.

Timings are interleaved (every variant once per round, the order reversed on alternate rounds) so that load from
other processes hits all variants alike; each variant is warmed up first and medians are reported. Both the process
CPU time and the wall-clock time are recorded; on a shared machine the CPU-time ratios (default: one torch thread) are
the trustworthy ones and the targets are judged on them. Run from the repository root (about 10 min on 2 cores):

    python benchmarks/bench_model.py --repeats 3

The results replace the ``## bench_model`` section of ``benchmarks/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import CLIPConfig, CLIPModel, XCLIPConfig, XCLIPModel  # noqa: E402
from vit_b16_configs import CLIP_TEXT, VIT_B16_VISION  # noqa: E402  (benchmarks/ is on sys.path when run)

from modeling_maxi import (  # noqa: E402
    MaxiVideoCLIPModel,
    available_backends,
    average_keys_over_frames,
    read_video_frames,
    video_io,
)
from modeling_maxi.video_io import sample_frame_indices  # noqa: E402

SECTION_NAME = "## bench_model"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per model variant (after warm-up)")
    parser.add_argument(
        "--warmup", type=int, default=0, help="untimed full-size calls per variant (after a 2-frame warm-up)"
    )
    parser.add_argument(
        "--layer-repeats", type=int, default=15, help="timed rounds for the single-layer cross-frame comparison"
    )
    parser.add_argument("--decode-repeats", type=int, default=7, help="timed rounds for the video decoding section")
    parser.add_argument("--num-frames", type=int, default=16, help="frames per video T")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads; 1 (default) keeps CPU-time ratios free of thread-synchronisation noise",
    )
    parser.add_argument(
        "--sections", default="abcde", help="subset of the sections to run, e.g. 'ab' or 'e' (default: all)"
    )
    parser.add_argument("--results", default="benchmarks/RESULTS.md", help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    args = parser.parse_args(argv)
    for name in ("repeats", "layer_repeats", "decode_repeats", "num_frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    unknown = sorted(set(args.sections) - set("abcde"))
    if unknown or not args.sections:
        parser.error(f"--sections must be letters among 'abcde', got {args.sections!r}")
    return args


def interleaved_timings(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of every variant, as ``{name: {"wall": [...], "cpu": [...]}}``: warm-up calls first, then
    ``repeats`` rounds calling each variant once, in reversed order on odd rounds.

    "cpu" is this process's CPU time (all threads): on a machine shared with other jobs it barely moves with their
    load, unlike wall-clock time, so ratios of CPU time are the reliable ones there."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    times = {name: {"wall": [], "cpu": []} for name in variants}
    names = list(variants)
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else names[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            variants[name]()
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
        print(
            f"  round {round_index + 1}/{repeats}: "
            + ", ".join(f"{n} {times[n]['wall'][-1]:.2f}s (cpu {times[n]['cpu'][-1]:.2f}s)" for n in names),
            flush=True,
        )
    return times


def ratio_row(label: str, times, numerator: str, denominator: str, target: float | None) -> str:
    """Ratios of CPU-time medians (with the range of the per-round ratios), of CPU-time minimums (the least
    disturbed call of each variant) and of wall-clock medians; the verdict uses the CPU-time median ratio."""
    top, bottom = times[numerator]["cpu"], times[denominator]["cpu"]
    ratio = statistics.median(top) / statistics.median(bottom)
    per_round = [a / b for a, b in zip(top, bottom)]
    minimum_ratio = min(top) / min(bottom)
    wall_ratio = statistics.median(times[numerator]["wall"]) / statistics.median(times[denominator]["wall"])
    verdict = "" if target is None else ("met" if ratio <= target else "**missed**")
    target_text = "" if target is None else f"<= {target}"
    return (
        f"| {label} | {ratio:.3f} ({min(per_round):.3f}-{max(per_round):.3f}) | {minimum_ratio:.3f} | "
        f"{wall_ratio:.3f} | {target_text} | {verdict} |"
    )


RATIO_HEADER = [
    "| ratio | CPU time: ratio of medians (per-round range) | CPU time: ratio of minimums | wall-clock: ratio of "
    "medians | target | verdict (CPU medians) |",
    "|---|---|---|---|---|---|",
]


def median_rows(times) -> list[str]:
    lines = ["| variant | median CPU s | median wall s | wall s per round |", "|---|---|---|---|"]
    for name, values in times.items():
        lines.append(
            f"| {name} | {statistics.median(values['cpu']):.3f} | {statistics.median(values['wall']):.3f} | "
            f"{', '.join(f'{v:.2f}' for v in values['wall'])} |"
        )
    return lines


def build_models(num_frames: int, sections: str):
    """Zero-argument callables, one per model variant, all on the same random video (the models are warmed up),
    and, for section (b), callables running only the last vision layer with plain and cross-frame attention."""
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(vision_config=VIT_B16_VISION, text_config=CLIP_TEXT, projection_dim=512)).eval()
    pixel_values = torch.randn(1, num_frames, 3, 224, 224)

    def maxi_variant(attn_implementation: str = "sdpa", **overrides) -> MaxiVideoCLIPModel:
        model = MaxiVideoCLIPModel.from_clip(clip, **overrides)
        model.load_state_dict(clip.state_dict(), assign=True)  # share CLIP's tensors instead of holding a copy
        model.set_attn_implementation(attn_implementation)
        return model.eval()

    def video_features(model):
        return lambda videos: model.get_video_features(pixel_values=videos).pooler_output

    maxi = maxi_variant()
    encoders = {"maxi": video_features(maxi)}
    if "a" in sections:
        encoders["clip_images"] = lambda videos: clip.get_image_features(pixel_values=videos[0]).pooler_output
    if "b" in sections:
        cross_frame_2 = maxi_variant(cross_frame_layers=2)
        encoders["cross_frame_2"] = video_features(cross_frame_2)
        encoders["cross_frame_6"] = video_features(maxi_variant(cross_frame_layers=6))
    if "c" in sections:
        encoders["maxi_eager"] = video_features(maxi_variant("eager"))
    if "d" in sections:
        torch.manual_seed(0)
        xclip_config = XCLIPConfig(vision_config={"patch_size": 16, "num_frames": num_frames}, projection_dim=512)
        encoders["xclip"] = video_features(XCLIPModel(xclip_config).eval())

    with torch.inference_mode():
        # Warm-up (lazy initialisation, allocator): 2 frames, except X-CLIP whose frame count is fixed by its config.
        for name, encode in encoders.items():
            encode(pixel_values if name == "xclip" else pixel_values[:, : min(2, num_frames)])
        reference = encoders["maxi"](pixel_values)
        if "a" in sections:  # MAXI's video feature is exactly the mean of CLIP's image features
            difference = (reference - encoders["clip_images"](pixel_values).mean(0, keepdim=True)).abs().max()
            print(f"(a) max |maxi - mean(clip image features)| = {difference.item():.2e}")
        if "c" in sections:
            difference = (reference - encoders["maxi_eager"](pixel_values)).abs().max()
            print(f"(c) max |sdpa - eager| = {difference.item():.2e}")
    variants = {name: (lambda encode=encode: encode(pixel_values)) for name, encode in encoders.items()}
    layer_variants = {}
    if "b" in sections:
        # The last vision layer alone on the hidden states of T frames: same weights, plain vs cross-frame attention.
        hidden_size = maxi.config.vision_config.hidden_size
        hidden_states = torch.randn(num_frames, maxi.vision_model.embeddings.num_positions, hidden_size)
        plain_layer = maxi.vision_model.encoder.layers[-1]
        cross_layer = cross_frame_2.vision_model.encoder.layers[-1]
        offsets = tuple(cross_frame_2.config.cross_frame_offsets)
        layer_variants = {
            "layer_plain": lambda: plain_layer(hidden_states, None),
            "layer_cross_frame": lambda: cross_layer(hidden_states, None, num_frames=num_frames),
            # The only extra work of cross-frame attention: averaging the projected keys over neighbouring frames.
            "key_averaging_only": lambda: average_keys_over_frames(hidden_states, num_frames, offsets),
        }
    return variants, layer_variants


def run_model_sections(args, sections: str) -> list[str]:
    variants, layer_variants = build_models(args.num_frames, sections)
    print(f"timing {list(variants)}: {args.warmup} warm-up + {args.repeats} rounds")
    with torch.inference_mode():
        times = interleaved_timings(variants, args.repeats, args.warmup)
        if layer_variants:
            print(f"timing {list(layer_variants)}: 1 warm-up + {args.layer_repeats} rounds")
            layer_times = interleaved_timings(layer_variants, args.layer_repeats, warmup=1)
    notes = []
    lines = [
        f"One video of T={args.num_frames} frames at 224x224, float32, `torch.inference_mode`, "
        f"{args.repeats} interleaved rounds:",
        "",
        *median_rows(times),
        "",
        *RATIO_HEADER,
    ]
    if "a" in sections:
        label = f"(a) MAXI video T={args.num_frames} / CLIP {args.num_frames} images"
        lines.append(ratio_row(label, times, "maxi", "clip_images", 1.03))
    if "b" in sections:
        lines.append(ratio_row("(b) cross-frame last 2 layers / off", times, "cross_frame_2", "maxi", 1.05))
        lines.append(ratio_row("(b) cross-frame last 6 layers / off", times, "cross_frame_6", "maxi", None))
        lines.append(
            ratio_row(
                f"(b) one vision layer, cross-frame / plain ({args.layer_repeats} rounds)",
                layer_times,
                "layer_cross_frame",
                "layer_plain",
                None,
            )
        )
        lines.append(
            ratio_row("(b) key averaging alone / one layer", layer_times, "key_averaging_only", "layer_plain", None)
        )
        extra = min(layer_times["key_averaging_only"]["cpu"])
        model = statistics.median(times["maxi"]["cpu"])
        notes.append(
            f"Cross-frame attention adds only the key averaging to CLIP's work: {1000 * extra:.1f} ms CPU per layer "
            f"(least disturbed call), so the expected overhead is {1 + 2 * extra / model:.3f} (2 layers) and "
            f"{1 + 6 * extra / model:.3f} (6 layers) of the {model:.2f} s model call (compare the whole-model ratios "
            "above, whose per-round ranges show this machine's noise)."
        )
    if "c" in sections:
        lines.append(ratio_row("(c) sdpa / eager", times, "maxi", "maxi_eager", None))
    if "d" in sections:
        lines.append(ratio_row("(d) MAXI / X-CLIP B/16 per video", times, "maxi", "xclip", 0.9))
    return lines + ([""] + notes if notes else [])


def write_test_clip(path: str, seconds: int = 10, fps: int = 25, size: tuple[int, int] = (240, 320), gop=None):
    """A synthetic but codec-realistic clip: moving gradients plus noise, H.264 (libx264, crf 23, yuv420p)."""
    import av

    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        options = {"crf": "23"}
        if gop is not None:
            options.update({"keyint": str(gop), "min-keyint": str(gop), "scenecut": "0"})
        stream.codec_context.options = options
        for index in range(seconds * fps):
            image = np.stack([(cols + 3 * index) % 256, (rows + 2 * index) % 256, ((cols + rows) // 2 + index) % 256])
            image = image.transpose(1, 2, 0) + noise.integers(-12, 12, (height, width, 3))
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def full_pyav_decode(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


def run_decode_section(args) -> list[str]:
    import av

    lines = [
        '(e) 16 frames (`strategy="segment"`) from a 10 s 320x240 25 fps H.264 clip (250 frames) vs decoding all '
        "250 frames to RGB with PyAV (`pyav_no_seek`: PyAV from the first frame to the last sampled one, no seeking):",
        "",
        "| clip keyframes | variant | median CPU ms | median wall ms | CPU / full PyAV decode | wall / full |",
        "|---|---|---|---|---|---|",
    ]
    wanted = sorted(set(sample_frame_indices(250, 16)))
    with tempfile.TemporaryDirectory() as directory:
        for gop, label in ((50, "every 2 s"), (None, "x264 default (scene cuts)")):
            path = os.path.join(directory, f"clip_gop{gop}.mp4")
            write_test_clip(path, gop=gop)
            variants = {"full_pyav_decode": lambda path=path: full_pyav_decode(path)}
            for backend in available_backends():
                variants[backend] = lambda path=path, backend=backend: read_video_frames(path, 16, backend=backend)
            # PyAV decoding from the first frame up to the last sampled one, without keyframe seeks.
            variants["pyav_no_seek"] = lambda path=path: video_io._pyav_decode_sequential(av, path, wanted)
            print(f"(e) clip with keyframes {label}: timing {list(variants)}")
            times = interleaved_timings(variants, args.decode_repeats, warmup=1)
            full = {metric: statistics.median(times["full_pyav_decode"][metric]) for metric in ("cpu", "wall")}
            for name, values in times.items():
                cpu, wall = statistics.median(values["cpu"]), statistics.median(values["wall"])
                lines.append(
                    f"| {label} | {name} | {1000 * cpu:.1f} | {1000 * wall:.1f} | {cpu / full['cpu']:.2f} | "
                    f"{wall / full['wall']:.2f} |"
                )
    return lines


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "an unknown CPU"


def update_results(path: str, body: str) -> None:
    """Replaces (or appends) this script's section, leaving the other sections of the file as they are."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmark results\n"
    section = f"{SECTION_NAME}\n\n{body.rstrip()}\n"
    start = text.find(SECTION_NAME + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION_NAME))
        text = text[:start] + section + ("" if following < 0 else text[following:])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load = os.getloadavg()
    header = [
        f"Command: `{command.strip()}` (run from the repository root)",
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {cpu_name()}"
        f", {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average at start {load[0]:.1f} (shared machine: variants are interleaved so load hits all alike).",
        "",
    ]
    body = list(header)
    model_sections = "".join(s for s in args.sections if s in "abcd")
    if model_sections:
        body += run_model_sections(args, model_sections) + [""]
    if "e" in args.sections:
        body += run_decode_section(args) + [""]
    text = "\n".join(body)
    print("\n" + text)
    if not args.no_write:
        update_results(args.results, text)
        print(f"updated {args.results}")


if __name__ == "__main__":
    main()
