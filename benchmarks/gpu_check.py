# SPDX-License-Identifier: Apache-2.0
"""Is this GPU ready for the paper's training run? Four rates, each next to the device's own compute-only rate.

Run through ``benchmarks/gpu_check.sh`` (which sets the environment); at real sizes, with random weights, no
download, on one GPU in under 8 minutes (every measurement is time-boxed by ``--seconds``):

1. training: ``MaxiTrainer.train`` as ``training/train.py`` runs it (CLIP ViT-B/16, the YAML's frames, per-device
   batch, bag size, bf16, activation checkpointing and loader workers) on generated H.264 clips, in clips/s, next to
   the compute-only rate: the same model, loss (`MaxiTrainer.compute_loss`) and AdamW update on one batch that
   already sits on the device;
2. the training loader alone (``trainer.get_train_dataloader()`` with the YAML's workers: decode, segment sampling,
   augmentation, bag sampling, tokenisation, collation, copy to the device), in clips/s, next to the same
   compute-only training rate: below it, the GPU waits for data;
3. the match stage (``modeling_maxi.text_bags.matching.match_videos_batch`` with the build's defaults: 16 frames,
   batch 16, float16), in videos/s, next to ``get_video_features`` on frames already decoded and on the device;
4. the caption stage (``modeling_maxi.text_bags.captioning.caption_videos_batch``: BLIP ViT-L/16 at 384 px, 8 frames
   per video, batch 8, up to 30 new tokens, float16), in videos/s, next to ``generate`` on frames already on the
   device. Random weights rarely emit the end token, so every caption runs to 30 tokens: a worst case.

``--tiny`` runs the same code at toy sizes (2 frames of 32 px, 2-layer towers, 1-second clips) on whatever device
there is, the CPU included, in well under a minute: a smoke check that keeps this script working, not a
measurement. The clips are synthetic (a noisy texture panned across the frame, ~1 MB per 10 s at 340x256, the upper
end of K400's bitrates at that size); decoding real clips costs about the same per frame.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from datasets import Dataset, disable_progress_bars  # noqa: E402
from transformers import CLIPImageProcessor, Trainer, TrainerCallback  # noqa: E402
from vit_b16_configs import BLIP_LARGE_VISION, CLIP_TEXT, VIT_B16_VISION  # noqa: E402  (benchmarks/ is on sys.path)

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel, MaxiVideoProcessor  # noqa: E402
from modeling_maxi.cli import parse_script_arguments  # noqa: E402
from modeling_maxi.dictionaries import load_class_names  # noqa: E402
from modeling_maxi.text_bags.captioning import caption_videos_batch, load_captioner  # noqa: E402
from modeling_maxi.text_bags.matching import (  # noqa: E402
    decode_videos,
    load_match_model,
    match_videos_batch,
    save_class_embeddings,
)
from modeling_maxi.tokenizer_offline import build_offline_clip_tokenizer  # noqa: E402
from modeling_maxi.training import (  # noqa: E402
    MaxiTrainer,
    MaxiTrainingArguments,
    SetEpochCallback,
    TextBagCollator,
    TextBagVideoDataset,
    configure_trainable,
)
from tests.helpers.videos import write_video  # noqa: E402
from training.train import DataArguments, ModelArguments  # noqa: E402

CONFIG = REPO / "training" / "configs" / "maxi_vitb16_k400.yaml"
TINY_TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the real check and the tiny smoke run."""

    clip_vision: dict
    clip_text: dict
    projection_dim: int
    blip_vision: dict
    blip_text: dict
    video_height: int
    video_width: int
    video_seconds: float
    fps: int
    num_videos: int
    match_frames: int
    match_batch: int
    caption_frames: int
    caption_batch: int
    caption_image_size: int
    max_new_tokens: int
    stage_dtype: str
    train_overrides: tuple[str, ...]  # flags after the YAML


REAL = Sizes(
    clip_vision=VIT_B16_VISION, clip_text=CLIP_TEXT, projection_dim=512,
    blip_vision=BLIP_LARGE_VISION, blip_text={},
    video_height=256, video_width=340, video_seconds=10.0, fps=25, num_videos=32,
    # The text-bag build's defaults (`TextBagBuildArguments`).
    match_frames=16, match_batch=16, caption_frames=8, caption_batch=8, caption_image_size=384, max_new_tokens=30,
    stage_dtype="float16",
    train_overrides=(),  # the YAML as it is
)  # fmt: skip
TINY = Sizes(
    clip_vision={**TINY_TOWER, "image_size": 32, "patch_size": 8},
    clip_text={**TINY_TOWER, "max_position_embeddings": 77}, projection_dim=16,
    blip_vision={**TINY_TOWER, "image_size": 32, "patch_size": 8, "num_hidden_layers": 1},
    blip_text={**TINY_TOWER, "num_hidden_layers": 1, "vocab_size": 128, "max_position_embeddings": 40},
    video_height=48, video_width=64, video_seconds=1.0, fps=8, num_videos=4,
    match_frames=2, match_batch=2, caption_frames=2, caption_batch=2, caption_image_size=32, max_new_tokens=4,
    stage_dtype="float32",
    train_overrides=(
        "--num_frames", "2", "--bag_size", "3", "--per_device_train_batch_size", "2", "--dataloader_num_workers", "2",
        "--bf16", "false",
    ),
)  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, any device (the CPU smoke check of CI)")
    parser.add_argument("--seconds", type=float, help="length of each timed measurement (default 20; tiny 0.5)")
    parser.add_argument("--config", default=str(CONFIG), help="training YAML whose settings are measured")
    parser.add_argument("--json", help="also write the rates to this JSON file")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.5 if args.tiny else 20.0
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if not Path(args.config).is_file():
        parser.error(f"--config {args.config!r}: no such file")
    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device here: the real-size check needs a GPU; --tiny runs the CPU smoke check")
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(step: Callable[[], object], items: int, seconds: float, device: torch.device, warmup: int = 1) -> float:
    """Items per second of `step` (which handles `items` items) over at least 2 calls and `seconds`, after warm-up."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    synchronize(device)
    return calls * items / (time.perf_counter() - start)


def _clip_frames(index: int, sizes: Sizes) -> np.ndarray:
    """A noisy texture panned across the frame, with fresh sensor noise in every frame (seeded by `index`)."""
    rng = np.random.default_rng(index)
    height, width, margin = sizes.video_height, sizes.video_width, 60
    texture = rng.integers(0, 256, size=(height + margin + 1, width + margin + 1, 3), dtype=np.uint8)
    texture = ((texture[:-1, :-1].astype(np.uint16) + texture[1:, 1:]) // 2).astype(np.uint8)
    count = max(2, int(sizes.video_seconds * sizes.fps))
    offsets = [((t // 3) % margin, t % margin) for t in range(count)]
    frames = np.stack([texture[y : y + height, x : x + width] for y, x in offsets]).astype(np.int16)
    return np.clip(frames + rng.integers(-8, 9, size=frames.shape), 0, 255).astype(np.uint8)


def _write_clip(path: str, index: int, sizes: Sizes) -> str:
    return write_video(path, _clip_frames(index, sizes), fps=sizes.fps, crf=23)


def write_clips(directory: Path, sizes: Sizes) -> list[str]:
    """`sizes.num_videos` H.264 clips, encoded in parallel; returns their paths."""
    paths = [str(directory / f"clip_{index:03d}.mp4") for index in range(sizes.num_videos)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        list(pool.map(_write_clip, paths, range(len(paths)), [sizes] * len(paths)))
    return paths


def training_arguments(config: str, sizes: Sizes, output_dir: str, device: torch.device):
    """The script's three argument dataclasses from the YAML, as train.py parses them, set up for timing."""
    flags = [
        "--config", config, *sizes.train_overrides, "--output_dir", output_dir, "--report_to", "none",
        "--save_strategy", "no", "--max_steps", "100000", "--logging_steps", "100000", "--disable_tqdm", "true",
        "--use_cpu", "true" if device.type == "cpu" else "false",
    ]  # fmt: skip
    return parse_script_arguments((ModelArguments, DataArguments, MaxiTrainingArguments), flags)


def random_clip_model(sizes: Sizes, model_args: ModelArguments, num_frames: int):
    """A randomly initialised MaxiVideoCLIPModel of `sizes` and its processor (CLIP's real tokenizer, offline)."""
    config = MaxiVideoCLIPConfig(
        vision_config=sizes.clip_vision,
        text_config=sizes.clip_text,
        projection_dim=sizes.projection_dim,
        **model_args.config_overrides(),
    )
    torch.manual_seed(0)
    model = MaxiVideoCLIPModel(config)
    image_size = sizes.clip_vision["image_size"]
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = MaxiVideoProcessor(
        image_processor=image_processor, tokenizer=build_offline_clip_tokenizer(), num_frames=num_frames
    )
    return model, processor


def save_random_captioner(directory: Path, sizes: Sizes) -> str:
    """A randomly initialised BLIP captioner of `sizes` with a BERT word-piece tokenizer over a made-up vocabulary
    whose special tokens sit at BERT's and BLIP's ids ([PAD] 0, [SEP] 102, [DEC] 30522 = bos at real size), saved
    as `load_captioner` reads it."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    text_config = dict(sizes.blip_text)
    vocab_size = text_config.get("vocab_size", 30524)
    words = [f"w{index}" for index in range(vocab_size)]
    specials = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
    specials.update({vocab_size - 2: "[DEC]", vocab_size - 1: "[ENC]"})
    for index, token in specials.items():
        words[index] = token
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"), bos_token="[DEC]")
    bos, sep = tokenizer.convert_tokens_to_ids(["[DEC]", "[SEP]"])
    text_config.update(bos_token_id=bos, sep_token_id=sep, eos_token_id=sep, pad_token_id=0)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text_config, vision_config=sizes.blip_vision))
    size = {"height": sizes.caption_image_size, "width": sizes.caption_image_size}
    processor = BlipProcessor(image_processor=BlipImageProcessor(size=size), tokenizer=tokenizer)
    model.save_pretrained(directory / "model")
    processor.save_pretrained(directory / "model")
    return str(directory / "model")


def text_bag_rows(paths: list[str], video_root: Path, rows: int) -> Dataset:
    """A text-bag dataset of `rows` rows cycling over the clips: K400 names as matches, 20 other names as the bag."""
    names = load_class_names("k400")
    labels = [row % len(names) for row in range(rows)]
    return Dataset.from_dict(
        {
            "video_path": [os.path.relpath(paths[row % len(paths)], video_root) for row in range(rows)],
            "matched_label": labels,
            "matched_text": [names[label] for label in labels],
            "text_bag": [[names[(label + k) % len(names)] for k in range(1, 21)] for label in labels],
        }
    )


class StepClock(TrainerCallback):
    """Times optimizer steps after `warmup_steps` and stops training once `seconds` have been timed."""

    def __init__(self, seconds: float, device: torch.device, warmup_steps: int = 2):
        self.seconds, self.device, self.warmup_steps = seconds, device, warmup_steps
        self.start = self.end = None
        self.timed_steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        now = time.perf_counter()
        if state.global_step == self.warmup_steps:
            self.start = now
        elif state.global_step > self.warmup_steps:
            self.end, self.timed_steps = now, state.global_step - self.warmup_steps
            control.should_training_stop = self.timed_steps >= 2 and now - self.start >= self.seconds


def loader_rate(trainer: MaxiTrainer, seconds: float) -> tuple[float, dict]:
    """Clips/s of the Trainer's own training dataloader (its workers, pinning, device placement), first batch
    excluded (worker start-up); also returns the last batch, already on the device."""
    loader = iter(trainer.get_train_dataloader())
    batch = next(loader)
    start, clips = time.perf_counter(), 0
    while clips == 0 or time.perf_counter() - start < seconds:
        batch = next(loader)
        clips += len(batch["pixel_values"])
    rate = clips / (time.perf_counter() - start)
    del loader
    return rate, batch


def compute_only_train_rate(trainer: MaxiTrainer, batch: dict, seconds: float) -> float:
    """Clips/s of forward, MIL-NCE loss, backward and AdamW step on one batch, kept on the device."""
    args, model, device = trainer.args, trainer.model, trainer.args.device
    model.train()
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = optimizer_cls([p for p in model.parameters() if p.requires_grad], **optimizer_kwargs)
    batch = {name: value.to(device) for name, value in batch.items()}

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rate = timed_rate(step, len(batch["pixel_values"]), seconds, device, warmup=2)
    optimizer.state.clear()  # the Trainer builds its own optimizer for the end-to-end run
    return rate


def training_rates(args, sizes: Sizes, work: Path, paths: list[str], device: torch.device) -> tuple[dict, dict]:
    """Rows 1 and 2: the Trainer's loader alone, the compute-only step, and `MaxiTrainer.train` end to end; also the
    training settings measured. Saves the model for the match stage."""
    model_args, data_args, training_args = training_arguments(args.config, sizes, str(work / "run"), device)
    model, processor = random_clip_model(sizes, model_args, data_args.num_frames)
    configure_trainable(model, training_args)
    dataset = TextBagVideoDataset.from_processor(
        text_bag_rows(paths, work, rows=20000), processor, str(work), data_args.num_frames, data_args.bag_size,
        seed=training_args.seed, training=True, video_backend=data_args.video_backend,
        augmentations=data_args.augmentations,
    )  # fmt: skip
    clock = StepClock(args.seconds, device)
    trainer = MaxiTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=TextBagCollator(processor.tokenizer, data_args.bag_size, dataset.frame_shape),
        processing_class=processor,
        callbacks=[SetEpochCallback(dataset), clock],
        bag_size=data_args.bag_size,
    )
    batch_size = training_args.per_device_train_batch_size
    rates = {}
    rates["loader"], batch = loader_rate(trainer, args.seconds)
    rates["train_compute_only"] = compute_only_train_rate(trainer, batch, args.seconds)
    trainer.train()
    clips_per_step = batch_size * training_args.gradient_accumulation_steps
    rates["train"] = clock.timed_steps * clips_per_step / (clock.end - clock.start)
    setting = {
        "num_frames": data_args.num_frames,
        "per_device_batch": batch_size,
        "bag_size": data_args.bag_size,
        "bf16": training_args.bf16,
        "activation_checkpointing": training_args.activation_checkpointing,
        "loader_workers": training_args.dataloader_num_workers,
    }
    model.save_pretrained(work / "clip")  # the match stage loads it by path, as a build does
    processor.save_pretrained(work / "clip")
    del trainer, model
    return rates, setting


def stage_rate(batch_function, paths: list[str], batch_size: int, options: dict, seconds: float, device):
    """Videos/s of a text-bag stage's batch function (as `Dataset.map` calls it, rank 0) cycling over the clips,
    the first batch (model loading) excluded; also returns the first batch's paths for the compute-only rate."""
    batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    calls = iter(range(10**9))

    def step():
        batch_function({"video_path": batches[next(calls) % len(batches)]}, 0, **options)

    return timed_rate(step, batch_size, seconds, device), batches[0]


def match_rates(args, sizes: Sizes, work: Path, paths: list[str], device: torch.device) -> dict[str, float]:
    """Row 3: `match_videos_batch` over the clips vs `get_video_features` on frames already on the device."""
    names = load_class_names("k400")
    embeddings = str(work / "class_embeddings.safetensors")
    save_class_embeddings(
        embeddings, torch.nn.functional.normalize(torch.randn(len(names), sizes.projection_dim), dim=-1)
    )
    options = {"model_name_or_path": str(work / "clip"), "class_embeddings_path": embeddings, "class_names": names}
    options.update(num_frames=sizes.match_frames, dtype=sizes.stage_dtype)
    stage, first = stage_rate(match_videos_batch, paths, sizes.match_batch, options, args.seconds, device)
    model, processor = load_match_model(str(work / "clip"), str(_stage_device(device)), sizes.stage_dtype)
    frames, _ = decode_videos(first, sizes.match_frames, "segment")
    pixel_values = processor.preprocess_frames(frames).to(device=model.device, dtype=model.dtype)

    @torch.no_grad()
    def bare_step():
        model.get_video_features(pixel_values=pixel_values)

    return {"match": stage, "match_compute_only": timed_rate(bare_step, len(frames), args.seconds, device)}


def caption_rates(args, sizes: Sizes, work: Path, paths: list[str], device: torch.device) -> dict[str, float]:
    """Row 4: `caption_videos_batch` over the clips vs `generate` on frames already on the device."""
    captioner = save_random_captioner(work / "blip", sizes)
    options = {"captioner": captioner, "num_frames": sizes.caption_frames, "image_size": sizes.caption_image_size}
    options.update(max_new_tokens=sizes.max_new_tokens, dtype=sizes.stage_dtype)
    stage, first = stage_rate(caption_videos_batch, paths, sizes.caption_batch, options, args.seconds, device)
    model, processor = load_captioner(captioner, str(_stage_device(device)), sizes.stage_dtype)
    frames, _ = decode_videos(first, sizes.caption_frames, "uniform")
    images = [frame for video in frames for frame in video]
    size = {"height": sizes.caption_image_size, "width": sizes.caption_image_size}
    pixel_values = processor.image_processor(images=images, size=size, return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(device=model.device, dtype=model.dtype)

    @torch.no_grad()
    def bare_step():
        model.generate(pixel_values=pixel_values, max_new_tokens=sizes.max_new_tokens, num_beams=1)

    return {"caption": stage, "caption_compute_only": timed_rate(bare_step, len(frames), args.seconds, device)}


def _stage_device(device: torch.device) -> torch.device:
    """The device the stage functions pick for rank 0 (`device_for_rank`): cuda:0 on a GPU machine, else the CPU."""
    return torch.device("cuda", 0) if device.type == "cuda" else device


def report(rates: dict[str, float], setting: dict, sizes: Sizes, device: torch.device, tiny: bool) -> str:
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    mode = "TINY SMOKE RUN (toy sizes: not a measurement)" if tiny else "real sizes, random weights"
    checkpointing = "on" if setting["activation_checkpointing"] else "off"
    train = (
        f"{setting['num_frames']} frames, batch {setting['per_device_batch']}, bag {setting['bag_size']}, "
        f"{'bf16' if setting['bf16'] else 'fp32'}, activation checkpointing {checkpointing}"
    )
    rows = [
        ("training, MaxiTrainer.train: loader + step", "train", "train_compute_only", "clips/s"),
        (f"training loader alone, {setting['loader_workers']} workers", "loader", "train_compute_only", "clips/s"),
        (f"match stage, {sizes.match_frames} frames, batch {sizes.match_batch}", "match", "match_compute_only",
         "videos/s"),
        (f"caption stage, {sizes.caption_frames} frames, batch {sizes.caption_batch}", "caption",
         "caption_compute_only", "videos/s"),
    ]  # fmt: skip
    lines = [
        f"gpu_check: {mode} on {hardware}, torch {torch.__version__}; training: {train}",
        "",
        "| stage | rate | compute-only rate on this device | rate / compute-only |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, compute_key, unit in rows:
        ratio = rates[key] / rates[compute_key]
        lines.append(f"| {label} | {rates[key]:.2f} {unit} | {rates[compute_key]:.2f} {unit} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    started = time.perf_counter()
    disable_progress_bars()
    sizes = TINY if args.tiny else REAL
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cpu" and sizes.stage_dtype != "float32":
        sizes = replace(sizes, stage_dtype="float32")
    with tempfile.TemporaryDirectory(prefix="maxi_gpu_check_") as tmp:
        work = Path(tmp)
        paths = write_clips(work, sizes)
        rates, setting = training_rates(args, sizes, work, paths, device)
        rates.update(match_rates(args, sizes, work, paths, device))
        rates.update(caption_rates(args, sizes, work, paths, device))
    print(report(rates, setting, sizes, device, args.tiny))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), **setting, **rates}, indent=2) + "\n")
    return rates


if __name__ == "__main__":
    main()
