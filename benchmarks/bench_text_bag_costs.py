# SPDX-License-Identifier: Apache-2.0
"""What a K400-scale text-bag build costs: per-video CPU cost of each stage, and the GPU-hours of 240k videos.

Measured here, on this CPU, at the real sizes with random weights (no download):
  decode    16 segment-sampled + 8 uniformly sampled frames of a generated 10 s 340x256 25 fps H.264 clip in one pass
            (`read_video_frame_sets`, the build's frame pass), then CLIP's image processing of the 16 frames (224 px)
            and BLIP's of the 8 (384 px): the work of the decode workers;
  match     CLIP ViT-B/16 (`MaxiVideoCLIPModel`) on 16 frames at 224 px, mean pooling, similarity to 400 classes;
  caption   BLIP-large (ViT-L/16 at 384 px + BERT-base decoder) generating exactly `--caption-tokens` tokens
            (random weights: `min_new_tokens = max_new_tokens`, the build's bound) for each of 8 frames, and its vision
            encoder alone (the share that published ViT-L/16-384 throughputs cover);
  parse     spaCy verb parsing (`extract_verbs_batch`) of 8 captions per video.

Cited, not measured: GPU inference throughputs of timm's published benchmark tables (`CITED_GPU_RATES`), from which
the script computes the GPU-hours of 240k videos. Run from the repository root (about 8 minutes on 2 cores;
`--quick`, about 3, times fewer videos and 2 caption frames, scaled to 8):

    python benchmarks/bench_text_bag_costs.py [--quick]

The results replace the ``## bench_text_bag_costs`` section of ``benchmarks/RESULTS.md``.
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
from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor  # noqa: E402
from vit_b16_configs import BLIP_LARGE_VISION, CLIP_TEXT, VIT_B16_VISION  # noqa: E402

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel  # noqa: E402
from modeling_maxi.text_bags.verb_parsing import extract_verbs_batch, load_spacy_pipeline  # noqa: E402
from modeling_maxi.video_io import read_video_frame_sets  # noqa: E402

SECTION_NAME = "## bench_text_bag_costs"
NUM_VIDEOS_K400 = 240_000
MATCH_FRAMES, CAPTION_FRAMES, NUM_CLASSES = 16, 8, 400
TIMM_TABLE = "huggingface/pytorch-image-models, results/benchmark-infer-amp-nchw-pt291-cu128-4090.csv (commit 90cae8c)"
# (images/s, source): timm's inference benchmark, AMP float16, NCHW, batch 1024, PyTorch 2.9.1, CUDA 12.8, RTX 4090.
# timm's `infer_gmacs` of vit_large_patch16_384 in the same table (BLIP-L's vision encoder is that architecture).
VIT_L16_384_GMACS = 191.21
CITED_GPU_RATES = {
    "vit_base_patch16_clip_224": (3355.89, TIMM_TABLE),
    "vit_large_patch16_384": (312.48, TIMM_TABLE),
}
CAPTIONS = [
    "a man is riding a horse on the beach",
    "a woman playing a guitar in a room",
    "two people dancing on a stage",
    "a boy jumping into a swimming pool",
    "a person holding a dog in a park",
    "a group of people running down a street",
    "a man lifting weights in a gym",
    "a girl brushing her hair in front of a mirror",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer videos, 2 caption frames scaled to 8")
    parser.add_argument("--caption-tokens", type=int, default=30, help="tokens generated per caption (the bound)")
    common.add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.caption_tokens < 1:
        parser.error(f"--caption-tokens must be >= 1, got {args.caption_tokens}")
    sizes = (2, 1, 2) if args.quick else (4, 2, CAPTION_FRAMES)
    args.decode_videos, args.model_videos, args.blip_frames = sizes
    return args


def timed(function, repeats: int) -> tuple[float, float]:
    """Median CPU seconds (this process, all threads) and wall seconds of `repeats` calls."""
    cpu, wall = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(cpu), statistics.median(wall)


def clip_and_processor(num_frames: int):
    torch.manual_seed(0)
    config = MaxiVideoCLIPConfig(vision_config=VIT_B16_VISION, text_config=CLIP_TEXT, projection_dim=512)
    return MaxiVideoCLIPModel(config).eval(), common.clip_video_processor(num_frames)


def blip_large():
    torch.manual_seed(0)
    return BlipForConditionalGeneration(BlipConfig(vision_config=BLIP_LARGE_VISION)).eval()


def measure_decode(paths: list[str]) -> tuple[dict[str, tuple[float, float]], tuple]:
    """Decode (one pass, both frame sets) and prepare (both image processings) per video; and one video's frames."""
    requests = [(MATCH_FRAMES, "segment"), (CAPTION_FRAMES, "uniform")]
    read_video_frame_sets(paths[0], requests)  # warm-up (decoder libraries)
    cpu, wall = timed(lambda: [read_video_frame_sets(path, requests) for path in paths], 1)
    frames = read_video_frame_sets(paths[0], requests)
    _, clip_processor = clip_and_processor(MATCH_FRAMES)
    blip_processor = BlipImageProcessor(size={"height": 384, "width": 384})

    def prepare():
        clip_processor.preprocess_frames([frames[0]])
        blip_processor(list(frames[1]), return_tensors="pt")

    costs = {"decode": (cpu / len(paths), wall / len(paths)), "prepare": timed(prepare, 3)}
    return costs, frames


@torch.inference_mode()
def measure_match(match_frames, num_videos: int) -> tuple[float, float]:
    clip, clip_processor = clip_and_processor(MATCH_FRAMES)
    pixel_values = clip_processor.preprocess_frames([match_frames] * num_videos)
    classes = torch.nn.functional.normalize(torch.randn(NUM_CLASSES, 512), dim=-1)

    def match():
        embeds = clip.get_video_features(pixel_values=pixel_values).frame_embeds.mean(dim=1)
        (torch.nn.functional.normalize(embeds, dim=-1) @ classes.T).topk(5)

    match()  # warm-up
    cpu, wall = timed(match, 1)
    return cpu / num_videos, wall / num_videos


@torch.inference_mode()
def measure_caption(caption_frames, num_frames: int, tokens: int) -> dict[str, tuple[float, float]]:
    """BLIP-L's vision encoder alone and the bounded generation, per video of 8 frames (scaled from `num_frames`)."""
    blip = blip_large()
    processor = BlipImageProcessor(size={"height": 384, "width": 384})
    images = processor(list(caption_frames[:num_frames]), return_tensors="pt")["pixel_values"]
    scale = CAPTION_FRAMES / num_frames
    blip.vision_model(pixel_values=images[:1])  # warm-up
    vision_cpu, vision_wall = timed(lambda: blip.vision_model(pixel_values=images), 1)
    cpu, wall = timed(lambda: blip.generate(pixel_values=images, max_new_tokens=tokens, min_new_tokens=tokens), 1)
    return {"caption_vision": (vision_cpu * scale, vision_wall * scale), "caption": (cpu * scale, wall * scale)}


def measure_parse() -> tuple[float, float]:
    nlp = load_spacy_pipeline()
    videos = [CAPTIONS[index:] + CAPTIONS[:index] for index in range(len(CAPTIONS))] * 4
    extract_verbs_batch(videos[:2], nlp)  # warm-up
    cpu, wall = timed(lambda: extract_verbs_batch(videos, nlp), 3)
    return cpu / len(videos), wall / len(videos)


def measure(args, paths: list[str]) -> dict[str, tuple[float, float]]:
    """CPU and wall seconds per video of each measured step."""
    costs, (match_frames, caption_frames) = measure_decode(paths)
    costs["match"] = measure_match(match_frames, args.model_videos)
    costs.update(measure_caption(caption_frames, args.blip_frames, args.caption_tokens))
    costs["parse"] = measure_parse()
    return costs


def gpu_hours(images_per_video: int, rate: float) -> float:
    return NUM_VIDEOS_K400 * images_per_video / rate / 3600


def decoder_gmacs_per_image(tokens: int) -> float:
    """Multiply-accumulates of BLIP-L's BERT-base decoder per image for `tokens` generated tokens (with KV cache):
    the cross-attention keys/values of the 577 image tokens once, then per token 12 layers of self-attention (4 h^2),
    cross-attention query/output (2 h^2), feed-forward (8 h^2), attention over the 577 image tokens, and the LM head."""
    hidden, layers, image_tokens, vision_width, vocab = 768, 12, 577, 1024, 30524
    cross_keys_values = layers * image_tokens * 2 * vision_width * hidden
    per_token = layers * (14 * hidden**2 + 2 * image_tokens * hidden) + hidden * vocab
    return (cross_keys_values + tokens * per_token) / 1e9


def table(args, costs: dict[str, tuple[float, float]]) -> list[str]:
    clip_rate, _ = CITED_GPU_RATES["vit_base_patch16_clip_224"]
    vit_l_rate, _ = CITED_GPU_RATES["vit_large_patch16_384"]
    clip_hours = gpu_hours(MATCH_FRAMES, clip_rate)
    encoder_hours = gpu_hours(CAPTION_FRAMES, vit_l_rate)
    flop_ratio = 1 + decoder_gmacs_per_image(args.caption_tokens) / VIT_L16_384_GMACS
    cpu_ratio = costs["caption"][0] / costs["caption_vision"][0]
    low, high = sorted((encoder_hours * flop_ratio, encoder_hours * cpu_ratio))
    data_cpu = costs["decode"][0] + costs["prepare"][0]
    fastest, slowest = (NUM_VIDEOS_K400 / ((clip_hours + hours) * 3600) for hours in (low, high))
    core_hours = {name: NUM_VIDEOS_K400 * cpu / 3600 for name, (cpu, _) in costs.items()}
    rows = [
        ("decode 16 + 8 frames in one pass (10 s 340x256 H.264)", "decode", "CPU only", "-"),
        ("prepare: CLIP processing 16 x 224 px + BLIP processing 8 x 384 px", "prepare", "CPU only", "-"),
        ("match: CLIP ViT-B/16, 16 frames at 224 px", "match", f"{clip_rate:g} img/s [cited]", f"{clip_hours:.2f}"),
        (
            "caption: BLIP-L vision encoder only (ViT-L/16, 8 frames at 384 px)",
            "caption_vision",
            f"{vit_l_rate:g} img/s [cited]",
            f"{encoder_hours:.2f}",
        ),
        (
            f"caption: BLIP-L generating {args.caption_tokens} tokens for each of 8 frames",
            "caption",
            f"encoder rate / ({flop_ratio:.2f} FLOPs .. {cpu_ratio:.2f} measured CPU time ratio) [estimated]",
            f"{low:.2f} .. {high:.2f}",
        ),
        ("parse: spaCy verbs of 8 captions", "parse", "CPU only", "-"),
    ]
    return [
        "| stage | CPU s / video [measured] | wall s / video [measured] | 240k videos: CPU core-hours [from measured] "
        "| RTX 4090 throughput | 240k videos: RTX 4090 GPU-hours [from cited] |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {label} | {costs[key][0]:.3f} | {costs[key][1]:.3f} | {core_hours[key]:,.0f} | {gpu} | {hours} |"
            for label, key, gpu, hours in rows
        ),
        "",
        f"**GPU total for {NUM_VIDEOS_K400:,} videos: {clip_hours + low:.1f} .. {clip_hours + high:.1f} RTX 4090 "
        f"GPU-hours** (match {clip_hours:.2f} from the cited ViT-B/16 rate; captions from the cited ViT-L/16-384 rate "
        f"times the generation overhead, between its FLOPs, x{flop_ratio:.2f}, and its measured CPU time, "
        f"x{cpu_ratio:.2f}: autoregressive decoding runs further below peak than the encoder), i.e. "
        f"{slowest:.0f} .. {fastest:.0f} videos/s per GPU. Feeding that takes {slowest * data_cpu:.1f} .. "
        f"{fastest * data_cpu:.1f} CPU cores of decode + prepare per GPU ({data_cpu:.3f} CPU s/video measured "
        f"here, {NUM_VIDEOS_K400 * data_cpu / 3600:,.0f} core-hours in all): `--decode-workers` of that order per "
        "GPU process, else the build is decode-bound. On CPU alone the two models would take "
        f"{core_hours['match'] + core_hours['caption']:,.0f} core-hours.",
    ]


def main(argv=None) -> str:
    args = parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # 10 s at 25 fps, 340x256 (K400's usual short side 256)
        costs = measure(args, common.write_clips(Path(tmp), args.decode_videos, 10.0, size=(256, 340)))
    command = " ".join(["python benchmarks/bench_text_bag_costs.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        SECTION_NAME,
        "",
        f"Run {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} on CPU ({os.cpu_count()} cores, "
        f"shared; load average at the end {os.getloadavg()[0]:.1f}), float32, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; {time.perf_counter() - start:.0f} s in all.",
        f"Command: `{command}`",
        "",
        f"Measured here: {args.decode_videos} generated clips decoded, CLIP on {args.model_videos} video(s) at once, "
        f"BLIP-L on {args.blip_frames} frame(s) (per-video figures scaled to 8 frames), spaCy on 32 videos; random "
        "weights, real sizes. CPU seconds count every thread of the process. GPU figures are cited (timm's published "
        f"inference benchmark: {TIMM_TABLE}, AMP float16, batch 1024) or estimated from them; no GPU ran here. The "
        "generated clips (a square moving over a smooth background) decode faster than real K400 footage: the decode "
        "row is a lower bound.",
        "",
        *table(args, costs),
    ]
    return common.publish_section("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    main()
