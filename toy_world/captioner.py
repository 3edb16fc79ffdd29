# SPDX-License-Identifier: Apache-2.0
"""Train the toy world's frame captioner: a small BLIP (`BlipForConditionalGeneration` built from a `BlipConfig`)
on captioned still frames, so that the text-bag build runs its real caption stage in the offline main job.

MAXI captions 8 frames of every training video with BLIP and adds the verbs of the captions to the video's text bag
(paper sec. 3.2); BLIP's captions of K400 clips name actions the dictionary lacks ("a man waving", "a woman chewing").
The toy captioner is the analogue: it learned to caption stills with what they show, the object (colour and
shape), the background, and the *novel* action's element when one is drawn ("a red circle
with a dot orbiting it on a sand background."). In the world of single actions it was never taught the dictionary's
motions, so its captions do not name them: their verbs are the novel actions' (orbit, wave, leak), which no dictionary
entry or phrase-table phrase contains. In the compound world it also names the clip's *manner* from the marks a still
shows ("a red circle is spinning on a sand background.", as BLIP says "a man is playing a guitar"), never its
direction (it was never taught one): one part of the action, right or wrong whatever the matching said. From one
still it cannot tell how things move; the orbit, flag and drops are there in every frame.

The tokenizer is a word-level BERT tokenizer over the captions' own vocabulary (`CAPTION_VOCABULARY`), saved with the
model and a `BlipProcessor`, so ``--captioner <dir>`` loads it like any BLIP checkpoint. The result is cached in
``<cache_dir>/<settings hash>/`` like the base model (`toy_world.base_pretraining`).

Usage::

    python -m toy_world.captioner --cache_dir toy_cache/captioner --world_dir maxi_demo_output/world
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import set_seed

from modeling_maxi.cli import parse_script_arguments
from toy_world.base_pretraining import (
    _RENDERING_FIELDS,
    ToyBaseArguments,
    cache_key,
    cosine_with_warmup,
    load_world_config,
    render_caption_corpus,
    validate_training_sizes,
)
from toy_world.rendering import (
    TOY_BACKGROUNDS,
    TOY_COLORS,
    TOY_SHAPES,
)
from toy_world.world import (
    TOY_MANNERS,
    WORLD_FORMAT_VERSION,
    ToyWorldConfig,
    settings_for_cache_key,
)

logger = logging.getLogger(__name__)

CAPTIONER_FORMAT_VERSION = 2  # 2: the compound world's captions name the manner
SETTINGS_FILE = "captioner_settings.json"
# What the captioner says about each novel action's element: a verb phrase, as BLIP says "a man waving his hand".
NOVEL_CAPTION_PHRASES: dict[str, str] = {
    "orbiting": "with a dot orbiting it",
    "waving": "waving a flag",
    "leaking": "leaking oil",
}
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
CAPTION_VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *_SPECIAL_TOKENS,
            ".",
            "a",
            "on",
            "background",
            *TOY_COLORS,
            *TOY_SHAPES,
            *TOY_BACKGROUNDS,
            *" ".join(NOVEL_CAPTION_PHRASES.values()).split(),
        ]
    )
)
# The compound world's captions say what the object is doing besides moving: "a red circle is spinning ...".
MANNER_CAPTION_VOCABULARY: tuple[str, ...] = ("is", *TOY_MANNERS)


def caption_vocabulary(world: ToyWorldConfig) -> tuple[str, ...]:
    """The captioner's word-level vocabulary in `world`: the manners' words only where clips have a manner."""
    return CAPTION_VOCABULARY + MANNER_CAPTION_VOCABULARY if world.compound_actions else CAPTION_VOCABULARY


@dataclass
class ToyCaptionerArguments:
    """Settings of the toy captioner's training (all but the paths enter the cache key)."""

    cache_dir: str = field(default="toy_cache/captioner", metadata={"help": "Parent directory of cached captioners."})
    seed: int = field(default=0, metadata={"help": "Seed of the captioned stills and of training."})
    num_images: int = field(default=4000, metadata={"help": "Captioned still frames rendered for training."})
    novel_action_prob: float = field(
        default=0.75,
        metadata={
            "help": "Share of the training stills that show a novel action (at the world's 0.4 the captioner learned "
            "to always leave them out)."
        },
    )
    num_steps: int = field(default=1000, metadata={"help": "Optimisation steps."})
    batch_size: int = field(default=48, metadata={"help": "Image-caption pairs per step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    image_size: int = field(default=64, metadata={"help": "Model input size (the caption stage must use it)."})
    patch_size: int = field(default=16, metadata={"help": "Vision patch size."})
    vision_layers: int = field(default=3, metadata={"help": "Vision transformer layers."})
    text_layers: int = field(default=2, metadata={"help": "Text decoder layers."})
    width: int = field(default=128, metadata={"help": "Hidden size of both towers."})
    force: bool = field(default=False, metadata={"help": "Retrain even if a cached captioner exists."})
    world_dir: str | None = field(
        default=None, metadata={"help": "A generated toy world whose rendering settings the stills must use."}
    )

    def __post_init__(self):
        validate_training_sizes(
            self, ("num_images", "num_steps", "batch_size", "image_size", "patch_size", "vision_layers")
        )
        if self.text_layers <= 0 or self.width <= 0 or self.width % 64:
            raise ValueError(
                f"`text_layers` must be positive and `width` a positive multiple of 64, got {self.text_layers!r} "
                f"and {self.width!r}."
            )
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        if not 0.0 <= self.novel_action_prob <= 1.0:
            raise ValueError(f"`novel_action_prob` must be in [0, 1], got {self.novel_action_prob!r}.")


def captioner_settings_hash(args: ToyCaptionerArguments, world: ToyWorldConfig) -> str:
    """Cache key: every training setting plus the world settings that change how frames look."""
    rendering = settings_for_cache_key({name: getattr(world, name) for name in _RENDERING_FIELDS})
    settings = {k: v for k, v in dataclasses.asdict(args).items() if k not in ("cache_dir", "force", "world_dir")}
    return cache_key({"captioner": CAPTIONER_FORMAT_VERSION, "world": WORLD_FORMAT_VERSION}, settings, rendering)


def describe_still(attributes: dict[str, str]) -> str:
    """The captioner's target caption of a still: colour, shape, the compound action's manner if any, the novel
    action's element if any, and the background, e.g. ``"a red circle waving a flag on a sand background."`` or
    ``"a red circle is spinning on a sand background."``."""
    words = [attributes["color"], attributes["shape"]]
    if attributes.get("manner"):
        words += ["is", attributes["manner"]]  # "is": spaCy then reads the participle as a verb in every caption
    if attributes.get("novel_action"):
        words.append(NOVEL_CAPTION_PHRASES[attributes["novel_action"]])
    return f"a {' '.join(words)} on a {attributes['background']} background."


def build_captioner(args: ToyCaptionerArguments, world: ToyWorldConfig):
    """A randomly initialised BLIP captioner for `world`'s stills and its processor (word-level BERT tokenizer over
    `caption_vocabulary`, 64 px images)."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    vocabulary = caption_vocabulary(world)
    with tempfile.TemporaryDirectory() as directory:
        vocab = os.path.join(directory, "vocab.txt")
        with open(vocab, "w", encoding="utf-8") as handle:
            handle.write("\n".join(vocabulary) + "\n")
        tokenizer = BertTokenizer(vocab, bos_token="[DEC]", model_max_length=40)
    bos, sep, pad = tokenizer.convert_tokens_to_ids(["[DEC]", "[SEP]", "[PAD]"])
    heads, inner = args.width // 64, 4 * args.width
    text = {"vocab_size": len(vocabulary), "hidden_size": args.width, "num_hidden_layers": args.text_layers}
    text.update(num_attention_heads=heads, intermediate_size=inner, max_position_embeddings=40, bos_token_id=bos)
    text.update(sep_token_id=sep, eos_token_id=sep, pad_token_id=pad)
    vision = {"hidden_size": args.width, "image_size": args.image_size, "patch_size": args.patch_size}
    vision.update(num_hidden_layers=args.vision_layers, num_attention_heads=heads, intermediate_size=inner)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=64))
    size = {"height": args.image_size, "width": args.image_size}
    processor = BlipProcessor(image_processor=BlipImageProcessor(size=size), tokenizer=tokenizer)
    return model, processor


def _manners_named(caption: str) -> list[str]:
    return [word for word in caption.split() if word in TOY_MANNERS]


@torch.no_grad()
def caption_accuracy(model, processor, pixel_values: torch.Tensor, captions: list[str]) -> dict[str, float]:
    """Exact-caption rate, novel-phrase accuracy (named when shown, absent otherwise) and, where the captions name
    manners, manner accuracy (the right one named) of greedy captions."""
    model.eval()
    generated = [
        text.strip()
        for chunk in pixel_values.split(256)
        for text in processor.batch_decode(
            model.generate(pixel_values=chunk, max_new_tokens=20), skip_special_tokens=True
        )
    ]
    normalised = [" ".join(processor.tokenizer.tokenize(c)) for c in captions]
    exact = np.mean([g.replace(" .", ".") == t.replace(" .", ".") for g, t in zip(generated, normalised)])
    novel = np.mean(
        [all((p in g) == (p in t) for p in NOVEL_CAPTION_PHRASES.values()) for g, t in zip(generated, normalised)]
    )
    accuracy = {"exact_caption_rate": float(exact), "novel_phrase_accuracy": float(novel)}
    manners_shown = [_manners_named(text) for text in normalised]
    if any(manners_shown):
        right = [_manners_named(text) == shown for text, shown in zip(generated, manners_shown) if shown]
        accuracy["manner_accuracy"] = float(np.mean(right))
    return {**accuracy, "example": generated[0]}


def _caption_corpus(args: ToyCaptionerArguments, world: ToyWorldConfig, count: int, seed_offset: int):
    """Stills (rendered like the base model's, from streams of their own) and their target captions."""
    still_args = ToyBaseArguments(seed=args.seed, num_images=count, batch_size=min(count, 2), num_probe_images=1)
    world = dataclasses.replace(world, novel_action_prob=args.novel_action_prob)
    frames, _, attributes = render_caption_corpus(still_args, world, count, seed_offset=seed_offset)
    return frames, [describe_still(a) for a in attributes]


def train_toy_captioner(args: ToyCaptionerArguments, world: ToyWorldConfig | None = None) -> str:
    """Train (or load from cache) the toy captioner; returns the directory holding model and processor."""
    world = world or ToyWorldConfig()
    key = captioner_settings_hash(args, world)
    output_dir = os.path.join(args.cache_dir, key)
    if os.path.isfile(os.path.join(output_dir, SETTINGS_FILE)) and not args.force:
        logger.info("Using the cached toy captioner in %s", output_dir)
        return output_dir
    set_seed(args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the model is tiny: one thread is 5-10x faster than two on a shared 2-core machine
    try:
        return _train_and_save(args, world, key, output_dir)
    finally:
        torch.set_num_threads(threads)


def _train_and_save(args: ToyCaptionerArguments, world: ToyWorldConfig, key: str, output_dir: str) -> str:
    started = time.perf_counter()
    model, processor = build_captioner(args, world)
    frames, captions = _caption_corpus(args, world, args.num_images, seed_offset=5)
    probe_frames, probe_captions = _caption_corpus(args, world, 300, seed_offset=6)
    pixel_values = processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
    probe_pixels = processor.image_processor(images=list(probe_frames), return_tensors="pt")["pixel_values"]
    text = processor.tokenizer(captions, padding=True, return_tensors="pt")
    input_ids = text["input_ids"].clone()
    input_ids[:, 0] = model.config.text_config.bos_token_id  # BLIP decodes from [DEC], not [CLS]
    labels = input_ids.masked_fill(text["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    warmup = max(args.num_steps // 20, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, args.num_steps, warmup))
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    losses = []
    for step in range(args.num_steps):
        batch = torch.randint(len(captions), (args.batch_size,), generator=generator)
        outputs = model(
            pixel_values=pixel_values[batch],
            input_ids=input_ids[batch],
            attention_mask=text["attention_mask"][batch],
            labels=labels[batch],
        )
        optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(outputs.loss.detach()))
        if step % 50 == 0:
            logger.info("captioner step %d: loss %.3f", step, np.mean(losses[-50:]))
        if step % 250 == 249:
            logger.info(
                "captioner step %d: %s",
                step,
                caption_accuracy(model, processor, probe_pixels[:96], probe_captions[:96]),
            )
            model.train()
    probes = caption_accuracy(model, processor, probe_pixels, probe_captions)
    logger.info("Toy captioner on held-out stills: %s", probes)
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    summary = {
        "settings_hash": key,
        "args": dataclasses.asdict(args),
        "final_loss": float(np.mean(losses[-20:])),
        "train_seconds": round(time.perf_counter() - started, 1),
        **probes,
    }
    with open(os.path.join(output_dir, SETTINGS_FILE), "w", encoding="utf-8") as handle:  # last: marks it complete
        json.dump(summary, handle, indent=1)
    logger.info("Saved the toy captioner to %s", output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> str:
    (args,) = parse_script_arguments(ToyCaptionerArguments, argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    return train_toy_captioner(args, load_world_config(args.world_dir) if args.world_dir else None)


if __name__ == "__main__":
    main()
