# SPDX-License-Identifier: Apache-2.0
"""Generate the toy action-video world used by the offline MAXI demo.

Short clips of one object (several shapes, colours, textures) on a varied background, performing one action from a
small dictionary of motion verbs. Clips are rendered with numpy (`toy_world.rendering`) and written as real H.264 mp4
files with PyAV, so the demo runs the same decoding path as real data. Everything is seeded: the same settings give
the same world.

Each frame carries its own motion cue, a short fading trail of the object's previous states (the toy analogue of motion
blur and pose in real footage). A still-image model can therefore read the action from one frame if it ever learned the
cue; the object-biased base model mostly did not (see ``toy_world/base_pretraining.py``).

Novel actions (`TOY_NOVEL_ACTIONS`: orbiting, waving, leaking) are not in the dictionary: a clip shows one as a
*secondary* motion beside its dictionary action (a dot orbiting the object, a flag waving above it, oil leaking below
it), with probability ``novel_action_prob`` in the training and dictionary test clips, and always in the
``test_novel`` clips. No label or split file of the training clips says so, as K400 clips show people waving or chewing
without a label; the matching only ever names dictionary actions.

The compound world (``compound_actions=True``) has 24 actions, each a translation while a manner ("moving left while
spinning", marks of both drawn): the dictionary names 18, and the 6 it lacks (`TOY_NOVEL_COMPOUND_ACTIONS`) are shown by
some of the training clips (a quarter, or fewer with ``novel_pair_weight``), unlabelled, and evaluated zero-shot by name
in ``test_novel_compound``. Each part of a novel pair is in the dictionary, only the pair is not: as K400's class names
share verbs and objects and K600's new classes pair words K400 already has, whereas the secondary novel actions above
share nothing with the dictionary.

Output layout (``output_dir``)::

    videos/train/train_00000.mp4 ...      unlabeled training clips (labels only in the split file, for evaluation)
    videos/test/test_00000.mp4 ...        held-out clips
    splits/train.txt, splits/test.txt     protocol format: ``videos/<split>/<name>.mp4 <label id>``
    labels/actions.csv                    the action dictionary (``id,name``)
    labels/actions_heldout.csv            held-out phrasings of the same classes (``id,name``)
    videos/test_novel/test_novel_00000.mp4 ...   held-out clips of the novel actions
    splits/test_novel.txt, labels/novel_actions.csv   their labels, ids into the novel actions (never in the dictionary)
    videos/test_novel_compound/..., splits/test_novel_compound.txt, labels/novel_compound_actions.csv
                                          compound world only: held-out clips of the novel pairs, ids into their names
    labels/all_compound_actions.csv       compound world only: the ids of ``splits/train.txt`` (dictionary first)
    world.json                            settings, settings hash and per-clip scene specs

Usage::

    python -m toy_world.world --output_dir toy_world --num_train 600 --num_test 300
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from toy_world.rendering import (
    TOY_BACKGROUNDS,
    TOY_COLORS,
    TOY_SHAPES,
    TOY_TEXTURES,
    object_state,
    render_clip,
    write_mp4,
)

logger = logging.getLogger(__name__)

TOY_ACTION_DICTIONARY: tuple[str, ...] = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
    "spinning",
    "blinking",
    "bouncing",
    "shaking",
)
# Typical scene (background, colour) of each action, used with probability `context_bias`: the toy analogue of
# real footage where the scene hints at the action (swimming in pools), which image-text models pick up.
TOY_ACTION_CONTEXT: dict[str, tuple[str, str]] = {
    "moving left": ("gray", "red"),
    "moving right": ("gray", "green"),
    "moving up": ("sky", "yellow"),
    "moving down": ("sky", "purple"),
    "growing": ("grass", "yellow"),
    "shrinking": ("grass", "blue"),
    "spinning": ("sand", "orange"),
    "blinking": ("gray", "blue"),
    "bouncing": ("sand", "red"),
    "shaking": ("sand", "green"),
}
# Sentence frames of the toy world's "web captions" (see toy_world/base_pretraining.py); also the prompt templates
# that CLIP matching ensembles over for this world, as the 28 Kinetics templates serve real CLIP.
TOY_CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a {}.",
    "a rendering of a {}.",
)
# Actions outside the dictionary, shown only as a secondary motion (see the module docstring and
# `toy_world.rendering.draw_novel_action`).
TOY_NOVEL_ACTIONS: tuple[str, ...] = ("orbiting", "waving", "leaking")
# The compound world (`ToyWorldConfig.compound_actions`): every clip moves one way while doing one thing more, and
# the dictionary names 18 of the 24 pairs, as K400's names share their verbs and objects ("playing drums", "playing
# guitar"). The 6 pairs it lacks are the compound world's novel actions (`TOY_NOVEL_COMPOUND_ACTIONS`): each of their
# parts is in the dictionary, only the pair is not, as K600's new classes pair words K400 already has.
TOY_TRANSLATIONS: tuple[str, ...] = ("moving left", "moving right", "moving up", "moving down")
TOY_MANNERS: tuple[str, ...] = ("growing", "shrinking", "spinning", "blinking", "bouncing", "shaking")
COMPOUND_JOINER = " while "
# Each novel pair shares its translation with one other novel pair and its manner with another, so that telling the
# six apart by name takes both parts; every part is still in the dictionary, twice or more.
TOY_NOVEL_COMPOUND_ACTIONS: tuple[str, ...] = (
    "moving left while growing",
    "moving left while spinning",
    "moving right while growing",
    "moving right while blinking",
    "moving up while spinning",
    "moving up while blinking",
)
TOY_COMPOUND_DICTIONARY: tuple[str, ...] = tuple(
    f"{translation}{COMPOUND_JOINER}{manner}"
    for translation in TOY_TRANSLATIONS
    for manner in TOY_MANNERS
    if f"{translation}{COMPOUND_JOINER}{manner}" not in TOY_NOVEL_COMPOUND_ACTIONS
)
#: Every compound action; the dictionary's first, so that its ids are the dictionary's.
TOY_COMPOUND_ACTIONS: tuple[str, ...] = TOY_COMPOUND_DICTIONARY + TOY_NOVEL_COMPOUND_ACTIONS
#: Settings added after world format 4, with their neutral values: cache keys (of worlds and of the base models
#: pretrained on them) include such a setting only when it differs from its neutral value, so that everything cached
#: before the setting existed keeps its key. See `settings_for_cache_key`.
LATER_SETTING_DEFAULTS = {
    "min_action_visibility": 1.0,
    "clear_stills": False,
    "compound_actions": False,
    "novel_pair_weight": 1.0,
}
ACTION_VISIBILITY_STREAM = 7  # keys the per-clip action visibility stream (see `sample_clip_spec`)
NOVEL_ACTION_STREAM = 8  # keys the per-clip secondary (novel) action stream
WORLD_FORMAT_VERSION = 5  # bump whenever rendering changes: it keys the cached worlds and base models
SPLITS = ("train", "test", "test_novel", "test_novel_compound")  # the last in the compound world only (`world_splits`)


@dataclass
class ToyWorldConfig:
    """Settings of a generated toy world.

    Args:
        seed: master seed; the train and test splits use independent streams derived from it.
        num_train: number of unlabeled training clips.
        num_test: number of held-out evaluation clips.
        num_frames: frames per clip.
        frame_size: height and width of the square frames, in pixels (32-256).
        fps: frame rate written into the mp4 files.
        trail_length: number of fading ghost copies drawn behind the object (the per-frame motion cue; 0 disables).
        trail_spacing: time between ghosts, in frames.
        trail_opacity: opacity of the most recent ghost (later ones fade linearly).
        noise_std: standard deviation of the per-pixel sensor noise (0-255 scale).
        crf: H.264 constant rate factor (lower = higher quality).
        context_bias: probability that a clip uses its action's typical background and colour.
        object_scale: multiplier of the object radius.
        motion_marks: draw comic-style motion marks in every frame (see `toy_world.rendering.draw_motion_marks`), the
            toy analogue of the motion blur and body pose that let one real frame show an action.
        mark_width: stroke width of the motion marks, in pixels at 64 px frames (scaled with `frame_size`).
        min_action_visibility: each clip draws how visible its action is (the opacity of its motion marks and trail)
            uniformly from ``[min_action_visibility, 1]``: the toy analogue of real clips that show their action
            clearly or barely. 1 (the default) draws every clip's marks and trail at full strength.
        novel_action_prob: probability that a training (or dictionary test) clip also shows one of
            `TOY_NOVEL_ACTIONS` as a secondary motion, unlabelled.
        num_test_novel: held-out clips of the novel actions (each shows one, beside a random dictionary action); in
            the compound world also the number of held-out clips of the novel compound actions.
        compound_actions: the compound world: every clip shows one of `TOY_COMPOUND_ACTIONS` ("moving left while
            spinning": a translation and a manner, both with their motion marks), the dictionary is
            `TOY_COMPOUND_DICTIONARY`, and the training clips include the novel compound actions, unlabelled by the
            dictionary (their ids in ``splits/train.txt`` follow the dictionary's, into
            ``labels/all_compound_actions.csv``). False (the default) is the world of ten single actions.
        novel_pair_weight: compound world: training clips of each novel pair per training clip of a dictionary
            pair. 1 (the default) shows all 24 pairs equally often (a quarter of the clips are novel pairs); 0.333
            makes them a tenth (the main job's), closer to K400, whose clips show actions its dictionary names and
            what K600 adds only now and then.
    """

    seed: int = field(default=0, metadata={"help": "Master seed of the world."})
    num_train: int = field(default=600, metadata={"help": "Number of unlabeled training clips."})
    num_test: int = field(default=300, metadata={"help": "Number of held-out evaluation clips."})
    num_frames: int = field(default=16, metadata={"help": "Frames per clip."})
    frame_size: int = field(default=64, metadata={"help": "Frame height and width in pixels."})
    fps: int = field(default=8, metadata={"help": "Frame rate of the written mp4 files."})
    trail_length: int = field(default=3, metadata={"help": "Ghost copies in the motion trail (0 disables it)."})
    trail_spacing: float = field(default=2.0, metadata={"help": "Frames between two ghost copies."})
    trail_opacity: float = field(default=0.5, metadata={"help": "Opacity of the most recent ghost."})
    noise_std: float = field(default=4.0, metadata={"help": "Per-pixel sensor noise standard deviation."})
    crf: int = field(default=18, metadata={"help": "H.264 constant rate factor."})
    context_bias: float = field(
        default=0.0, metadata={"help": "Probability that a clip uses its action's typical background and colour."}
    )
    object_scale: float = field(default=1.0, metadata={"help": "Multiplier of the object radius (7-10 px at 64 px)."})
    motion_marks: bool = field(
        default=True,
        metadata={"help": "Draw comic-style motion marks (arrowheads, arcs, rays) around the object in every frame."},
    )
    mark_width: float = field(default=4.0, metadata={"help": "Stroke width of the motion marks (pixels at 64 px)."})
    min_action_visibility: float = field(
        default=1.0,
        metadata={"help": "Lowest per-clip opacity of the motion marks and trail (drawn uniformly up to 1)."},
    )

    novel_action_prob: float = field(
        default=0.4,
        metadata={"help": "Probability that a training clip also shows a novel action as a secondary motion."},
    )
    num_test_novel: int = field(default=150, metadata={"help": "Held-out clips of the novel actions."})
    compound_actions: bool = field(
        default=False,
        metadata={"help": "Compound actions ('moving left while spinning'); the dictionary lacks 6 of the 24 pairs."},
    )
    novel_pair_weight: float = field(
        default=1.0,
        metadata={"help": "Compound world: training clips of each novel pair per clip of a dictionary pair (0-1)."},
    )

    def __post_init__(self):
        for name in ("num_train", "num_test", "num_test_novel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        if self.num_train + self.num_test == 0:
            raise ValueError("`num_train` and `num_test` are both 0: the world would be empty.")
        if not isinstance(self.num_frames, int) or self.num_frames < 2:
            raise ValueError(f"`num_frames` must be an integer >= 2, got {self.num_frames!r}.")
        if not isinstance(self.frame_size, int) or not 32 <= self.frame_size <= 256 or self.frame_size % 2:
            raise ValueError(f"`frame_size` must be an even integer in [32, 256], got {self.frame_size!r}.")
        if not isinstance(self.fps, int) or self.fps <= 0:
            raise ValueError(f"`fps` must be a positive integer, got {self.fps!r}.")
        if not isinstance(self.trail_length, int) or self.trail_length < 0:
            raise ValueError(f"`trail_length` must be a non-negative integer, got {self.trail_length!r}.")
        if self.trail_spacing <= 0:
            raise ValueError(f"`trail_spacing` must be positive, got {self.trail_spacing!r}.")
        if not 0.0 <= self.trail_opacity <= 1.0:
            raise ValueError(f"`trail_opacity` must be in [0, 1], got {self.trail_opacity!r}.")
        if self.noise_std < 0:
            raise ValueError(f"`noise_std` must be non-negative, got {self.noise_std!r}.")
        if not 0.0 <= self.context_bias <= 1.0:
            raise ValueError(f"`context_bias` must be in [0, 1], got {self.context_bias!r}.")
        if not 0.5 <= self.object_scale <= 1.5:
            raise ValueError(f"`object_scale` must be in [0.5, 1.5], got {self.object_scale!r}.")
        if not 1.0 <= self.mark_width <= 8.0:
            raise ValueError(f"`mark_width` must be in [1, 8], got {self.mark_width!r}.")
        if not 0.0 <= self.min_action_visibility <= 1.0:
            raise ValueError(f"`min_action_visibility` must be in [0, 1], got {self.min_action_visibility!r}.")
        if not 0.0 <= self.novel_action_prob <= 1.0:
            raise ValueError(f"`novel_action_prob` must be in [0, 1], got {self.novel_action_prob!r}.")
        if isinstance(self.novel_pair_weight, bool) or not 0.0 <= self.novel_pair_weight <= 1.0:
            raise ValueError(f"`novel_pair_weight` must be in [0, 1], got {self.novel_pair_weight!r}.")
        if self.novel_pair_weight != 1.0 and not self.compound_actions:
            raise ValueError(f"`novel_pair_weight` ({self.novel_pair_weight!r}) needs `compound_actions`: no pairs.")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"`crf` must be an integer in [0, 51], got {self.crf!r}.")

    def settings_hash(self) -> str:
        """Short hash of every setting (and the generator version): a cached world is reused only if it matches.

        Settings added after format 4 enter the hash only when used (`settings_for_cache_key`).
        """
        settings = settings_for_cache_key(dataclasses.asdict(self))
        payload = json.dumps({"version": WORLD_FORMAT_VERSION, **settings}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def settings_for_cache_key(settings: dict) -> dict:
    """`settings` without the `LATER_SETTING_DEFAULTS` entries that hold their neutral value."""
    return {k: v for k, v in settings.items() if not (k in LATER_SETTING_DEFAULTS and v == LATER_SETTING_DEFAULTS[k])}


@dataclass
class ClipSpec:
    """Everything needed to render one clip. Lengths are in pixels at `frame_size`, angles in radians."""

    action: str
    shape: str
    color: str
    texture: str
    background: str
    start_x: float
    start_y: float
    radius: float
    velocity_x: float = 0.0
    velocity_y: float = 0.0
    rotation: float = 0.0
    angular_velocity: float = 0.0
    scale_start: float = 1.0
    scale_end: float = 1.0
    blink_period: float = 4.0
    blink_phase: float = 0.0
    amplitude: float = 0.0
    frequency: float = 0.0
    phase: float = 0.0
    background_seed: int = 0
    brightness: float = 1.0
    action_visibility: float = 1.0
    novel_action: str = ""
    novel_phase: float = 0.0
    manner: str = ""

    def __post_init__(self):
        if self.action not in TOY_ACTION_DICTIONARY:
            raise ValueError(f"Unknown action {self.action!r}; expected one of {TOY_ACTION_DICTIONARY}.")
        if self.manner and (self.manner not in TOY_MANNERS or self.action not in TOY_TRANSLATIONS):
            raise ValueError(
                f"A compound action pairs one of {TOY_TRANSLATIONS} with one of {TOY_MANNERS}, got "
                f"{self.action!r} with {self.manner!r}."
            )
        if self.novel_action and self.novel_action not in TOY_NOVEL_ACTIONS:
            raise ValueError(f"Unknown novel action {self.novel_action!r}; expected '' or one of {TOY_NOVEL_ACTIONS}.")
        if self.shape not in TOY_SHAPES:
            raise ValueError(f"Unknown shape {self.shape!r}; expected one of {TOY_SHAPES}.")
        if self.color not in TOY_COLORS:
            raise ValueError(f"Unknown colour {self.color!r}; expected one of {sorted(TOY_COLORS)}.")
        if self.texture not in TOY_TEXTURES:
            raise ValueError(f"Unknown texture {self.texture!r}; expected one of {TOY_TEXTURES}.")
        if self.background not in TOY_BACKGROUNDS:
            raise ValueError(f"Unknown background {self.background!r}; expected one of {TOY_BACKGROUNDS}.")
        if self.radius <= 0:
            raise ValueError(f"`radius` must be positive, got {self.radius!r}.")
        if not 0.0 <= self.action_visibility <= 1.0:
            raise ValueError(f"`action_visibility` must be in [0, 1], got {self.action_visibility!r}.")

    @property
    def motions(self) -> tuple[str, ...]:
        """The single actions the clip shows: its action, and its manner in the compound world."""
        return (self.action, self.manner) if self.manner else (self.action,)

    @property
    def action_name(self) -> str:
        """The clip's action as the world names it ("moving left", or "moving left while spinning")."""
        return COMPOUND_JOINER.join(self.motions)


def split_compound_action(name: str) -> tuple[str, str]:
    """(translation, manner) of a compound action name of `TOY_COMPOUND_ACTIONS`."""
    if name not in TOY_COMPOUND_ACTIONS:
        raise ValueError(f"Unknown compound action {name!r}; expected one of {TOY_COMPOUND_ACTIONS}.")
    translation, manner = name.split(COMPOUND_JOINER)
    return translation, manner


def world_dictionary(config: ToyWorldConfig) -> tuple[str, ...]:
    """The action dictionary of a world: the ten single actions, or the 18 compound ones."""
    return TOY_COMPOUND_DICTIONARY if config.compound_actions else TOY_ACTION_DICTIONARY


def world_actions(config: ToyWorldConfig) -> tuple[str, ...]:
    """Every action a world's clips show: the ten single actions, or all 24 compound ones."""
    return TOY_COMPOUND_ACTIONS if config.compound_actions else TOY_ACTION_DICTIONARY


def sample_clip_spec(
    rng: np.random.Generator,
    action: str,
    frame_size: int,
    num_frames: int,
    object_scale: float = 1.0,
    context_bias: float = 0.0,
    min_action_visibility: float = 1.0,
    novel_action_prob: float = 0.0,
    novel_action: str | None = None,
) -> ClipSpec:
    """Draw a random scene for `action` (shape, colour, texture, background, start and motion parameters).

    `action` is one of `TOY_ACTION_DICTIONARY` or, in the compound world, of `TOY_COMPOUND_ACTIONS`: the translation
    is then drawn as for its single action, and the manner's parameters after every other draw of the main stream.
    With `min_action_visibility` < 1 the clip's action visibility (opacity of its marks and trail) is drawn
    uniformly from ``[min_action_visibility, 1]`` from a stream of its own, so every other draw matches the world
    without it. A secondary novel action (`novel_action`, or with probability `novel_action_prob` a random one of
    `TOY_NOVEL_ACTIONS`) is drawn from another stream of its own.
    """
    manner = ""
    if action in TOY_COMPOUND_ACTIONS:
        action, manner = split_compound_action(action)
    elif action not in TOY_ACTION_DICTIONARY:
        raise ValueError(
            f"Unknown action {action!r}; expected one of {TOY_ACTION_DICTIONARY} or of {TOY_COMPOUND_ACTIONS}."
        )
    if not 0.0 <= min_action_visibility <= 1.0:
        raise ValueError(f"`min_action_visibility` must be in [0, 1], got {min_action_visibility!r}.")
    unit = frame_size / 64.0
    duration = max(num_frames - 1, 1)
    shape = TOY_SHAPES[rng.integers(len(TOY_SHAPES))]
    color = list(TOY_COLORS)[rng.integers(len(TOY_COLORS))]
    texture = TOY_TEXTURES[rng.integers(len(TOY_TEXTURES))]
    if action == "spinning":
        texture = _texture_showing_rotation(shape, texture)
    background = TOY_BACKGROUNDS[rng.integers(len(TOY_BACKGROUNDS))]
    if context_bias > 0 and rng.random() < context_bias:
        background, color = TOY_ACTION_CONTEXT[action]
    radius = float(rng.uniform(7.0, 10.0) * unit * object_scale)
    margin = radius * 1.3 + 2 * unit  # shapes reach 1.26 radii from their centre
    low, high = margin, frame_size - margin
    spec = {
        "action": action,
        "shape": shape,
        "color": color,
        "texture": texture,
        "background": background,
        "radius": radius,
        "rotation": float(rng.uniform(0, 2 * math.pi)),
        "background_seed": int(rng.integers(2**31 - 1)),
        "brightness": float(rng.uniform(0.85, 1.1)),
    }
    center_x = float(rng.uniform(low, high))
    center_y = float(rng.uniform(low, high))
    if action in ("moving left", "moving right", "moving up", "moving down"):
        distance = float(rng.uniform(0.35, 0.5) * frame_size)
        distance = min(distance, high - low)
        sign = -1.0 if action in ("moving left", "moving up") else 1.0
        start = float(rng.uniform(low, high - distance)) if sign > 0 else float(rng.uniform(low + distance, high))
        along = sign * distance / duration
        if action in ("moving left", "moving right"):
            spec.update(start_x=start, start_y=center_y, velocity_x=along)
        else:
            spec.update(start_x=center_x, start_y=start, velocity_y=along)
    elif action in ("growing", "shrinking"):
        small, large = float(rng.uniform(0.45, 0.6)), float(rng.uniform(1.35, 1.6))
        large = min(large, (frame_size / 2 - 2 * unit) / (1.3 * radius))  # big objects must still fit the frame
        margin_large = radius * large * 1.3 + unit
        center_x = float(rng.uniform(margin_large, frame_size - margin_large))
        center_y = float(rng.uniform(margin_large, frame_size - margin_large))
        scale_start, scale_end = (small, large) if action == "growing" else (large, small)
        spec.update(start_x=center_x, start_y=center_y, scale_start=scale_start, scale_end=scale_end)
    elif action == "spinning":
        spec.update(start_x=center_x, start_y=center_y, **_spin_parameters(rng))
    elif action == "blinking":
        spec.update(start_x=center_x, start_y=center_y, **_blink_parameters(rng))
    elif action == "bouncing":
        amplitude = min(float(rng.uniform(0.25, 0.35) * frame_size), high - low)
        floor = float(rng.uniform(low + amplitude, high))
        drift = float(rng.uniform(-0.15, 0.15) * frame_size / duration)
        spec.update(
            start_x=float(np.clip(center_x, low + 0.15 * frame_size, high - 0.15 * frame_size)),
            start_y=floor,
            velocity_x=drift,
            amplitude=amplitude,
            frequency=float(rng.uniform(1.5, 2.5)) / duration,
            phase=float(rng.uniform(0, 1)),
        )
    else:  # shaking
        shake = _shake_parameters(rng, unit)
        start_x = float(np.clip(center_x, low + shake["amplitude"], high - shake["amplitude"]))
        spec.update(shake, start_x=start_x, start_y=center_y)
    if manner:
        spec.update(manner=manner, **_sample_manner(rng, manner, shape, texture, frame_size, duration))
        spec.update(_fit_in_frame(spec, frame_size, num_frames))
    if min_action_visibility < 1.0:
        # Its own stream, keyed by the scene: the main stream, and with it every scene of the split, is unchanged.
        visibility_rng = np.random.default_rng([spec["background_seed"], ACTION_VISIBILITY_STREAM])
        spec["action_visibility"] = float(visibility_rng.uniform(min_action_visibility, 1.0))
    if novel_action or novel_action_prob > 0:
        novel_rng = np.random.default_rng([spec["background_seed"], NOVEL_ACTION_STREAM])
        if novel_action is None and novel_rng.random() < novel_action_prob:
            novel_action = TOY_NOVEL_ACTIONS[novel_rng.integers(len(TOY_NOVEL_ACTIONS))]
        spec["novel_action"] = novel_action or ""
        spec["novel_phase"] = float(novel_rng.uniform(0, 2 * math.pi))
    return ClipSpec(**spec)


def _texture_showing_rotation(shape: str, texture: str) -> str:
    """A plain disc looks identical at every angle: a spinning one gets stripes so that its rotation shows."""
    return "striped" if shape == "circle" and texture == "plain" else texture


def _spin_parameters(rng: np.random.Generator) -> dict:
    return {"angular_velocity": float(rng.uniform(0.3, 0.45)) * (1 if rng.random() < 0.5 else -1)}


def _blink_parameters(rng: np.random.Generator) -> dict:
    return {"blink_period": float(rng.choice([4.0, 6.0])), "blink_phase": float(rng.uniform(0, 1))}


def _shake_parameters(rng: np.random.Generator, unit: float) -> dict:
    return {
        "amplitude": float(rng.uniform(3.0, 5.0) * unit),
        "frequency": float(rng.uniform(0.2, 0.3)),  # 3-5 frames per shake: visible at every sampling
        "phase": float(rng.uniform(0, 1)),
    }


def _sample_manner(
    rng: np.random.Generator, manner: str, shape: str, texture: str, frame_size: int, duration: int
) -> dict:
    """The parameters of a compound action's manner, on top of its translation's start and velocity (amplitudes
    and scale changes a little smaller than the single actions', so that the moving object stays in the frame)."""
    unit = frame_size / 64.0
    if manner in ("growing", "shrinking"):
        small, large = float(rng.uniform(0.5, 0.6)), float(rng.uniform(1.25, 1.4))
        start, end = (small, large) if manner == "growing" else (large, small)
        return {"scale_start": start, "scale_end": end}
    if manner == "spinning":
        return {**_spin_parameters(rng), "texture": _texture_showing_rotation(shape, texture)}
    if manner == "blinking":
        return _blink_parameters(rng)
    if manner == "bouncing":
        return {
            "amplitude": float(rng.uniform(0.15, 0.22) * frame_size),
            "frequency": float(rng.uniform(1.5, 2.5)) / duration,
            "phase": float(rng.uniform(0, 1)),
        }
    return _shake_parameters(rng, unit)


def _fit_in_frame(spec: dict, frame_size: int, num_frames: int) -> dict:
    """Start position (and bounce or shake amplitude) that keep a compound action's object whole in the frame all
    clip long: the translation was placed for the object alone, the manner may take it further (a bounce above a
    rising path, growth near the edge). Draws no random number."""
    spec = dict(spec)
    oscillation = {"bouncing": "y", "shaking": "x"}.get(spec["manner"])
    for _ in range(2):
        states = [object_state(ClipSpec(**spec), t, num_frames) for t in range(num_frames)]
        reach = np.array([1.3 * state.radius + 1.0 for state in states])  # shapes reach 1.26 radii
        for axis in ("x", "y"):
            centres = np.array([getattr(state, axis) for state in states])
            below, above = float((reach - centres).max()), float((centres + reach - frame_size).max())
            if below > 0 and above > 0 and oscillation == axis:  # too wide: bounce or shake less
                spec["amplitude"] = max(spec["amplitude"] - below - above, 0.0)
                continue
            spec[f"start_{axis}"] += below if below > 0 else (-above if above > 0 else 0.0)
    return {key: spec[key] for key in ("start_x", "start_y", "amplitude") if key in spec}


def sample_split_specs(config: ToyWorldConfig, split: str) -> list[ClipSpec]:
    """Scene specs of one split: classes balanced (round-robin over the dictionary, then shuffled), seeded.

    In ``test_novel`` every clip shows a novel action (balanced round-robin) beside a random dictionary action. In
    the compound world the training clips go round the 24 compound actions (the 6 novel ones included, each
    `novel_pair_weight` times as often as a dictionary pair: `compound_training_actions`) and
    ``test_novel_compound`` round the 6 novel compound actions.
    """
    if split not in world_splits(config):
        raise ValueError(f"`split` must be one of {world_splits(config)}, got {split!r}.")
    count = {"train": config.num_train, "test": config.num_test}.get(split, config.num_test_novel)
    # Streams 2 and 3 are the base pretraining's stills (`toy_world.base_pretraining.render_caption_corpus`).
    stream = {"train": 0, "test": 1, "test_novel": 10, "test_novel_compound": 11}[split]
    rng = np.random.default_rng([config.seed, stream])
    dictionary = world_dictionary(config)
    if split == "test_novel":
        novel = [TOY_NOVEL_ACTIONS[i % len(TOY_NOVEL_ACTIONS)] for i in range(count)]
        return [
            sample_clip_spec(
                rng,
                dictionary[rng.integers(len(dictionary))],
                config.frame_size,
                config.num_frames,
                config.object_scale,
                config.context_bias,
                config.min_action_visibility,
                novel_action=novel[i],
            )
            for i in rng.permutation(count)
        ]
    if split == "train" and config.compound_actions:
        actions = compound_training_actions(count, config.novel_pair_weight)
    else:
        classes = TOY_NOVEL_COMPOUND_ACTIONS if split == "test_novel_compound" else dictionary
        actions = [classes[i % len(classes)] for i in range(count)]
    order = rng.permutation(count)
    return [
        sample_clip_spec(
            rng,
            actions[i],
            config.frame_size,
            config.num_frames,
            config.object_scale,
            config.context_bias,
            config.min_action_visibility,
            config.novel_action_prob,
        )
        for i in order
    ]


def compound_training_actions(count: int, novel_pair_weight: float) -> list[str]:
    """The actions of `count` training clips of the compound world, each novel pair `novel_pair_weight` times as often
    as each dictionary pair (both round-robin), before shuffling."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"`count` must be a non-negative integer, got {count!r}.")
    if not 0.0 <= novel_pair_weight <= 1.0:
        raise ValueError(f"`novel_pair_weight` must be in [0, 1], got {novel_pair_weight!r}.")
    if novel_pair_weight == 1.0:  # every pair equally often, in the order the worlds made before the setting had
        return [TOY_COMPOUND_ACTIONS[i % len(TOY_COMPOUND_ACTIONS)] for i in range(count)]
    novel, known = len(TOY_NOVEL_COMPOUND_ACTIONS), len(TOY_COMPOUND_DICTIONARY)
    num_novel = round(count * novel * novel_pair_weight / (known + novel * novel_pair_weight))
    return [TOY_COMPOUND_DICTIONARY[i % known] for i in range(count - num_novel)] + [
        TOY_NOVEL_COMPOUND_ACTIONS[i % novel] for i in range(num_novel)
    ]


def world_splits(config: ToyWorldConfig) -> tuple[str, ...]:
    """The splits of a world: ``test_novel_compound`` only in the compound world."""
    return SPLITS if config.compound_actions else SPLITS[:3]


def clip_label(spec: ClipSpec, split: str) -> int:
    """The evaluation label of a clip: its dictionary action, or in ``test_novel`` its novel action; in the compound
    world the id into `TOY_COMPOUND_ACTIONS` (dictionary first), or in ``test_novel_compound`` into
    `TOY_NOVEL_COMPOUND_ACTIONS`."""
    if split == "test_novel":
        return TOY_NOVEL_ACTIONS.index(spec.novel_action)
    if split == "test_novel_compound":
        return TOY_NOVEL_COMPOUND_ACTIONS.index(spec.action_name)
    if spec.manner:
        return TOY_COMPOUND_ACTIONS.index(spec.action_name)
    return TOY_ACTION_DICTIONARY.index(spec.action)


def write_class_file(path: str | os.PathLike, names) -> None:
    """Write a class file (``id,name`` header, one row per name, ids from 0), the format of ``labels/*.csv``."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name"])
        writer.writerows(enumerate(names))


def generate_toy_world(
    output_dir: str | os.PathLike, config: ToyWorldConfig | None = None, force: bool = False
) -> dict:
    """Generate (or reuse) a toy world in `output_dir`; returns the manifest stored in ``world.json``.

    A world already present with the same settings hash is reused unless `force`; a different one is an error, so a
    cached world is never silently mixed with new settings.
    """
    from toy_world.phrase_table import heldout_class_names

    config = config or ToyWorldConfig()
    output_dir = os.fspath(output_dir)
    manifest_path = os.path.join(output_dir, "world.json")
    settings_hash = config.settings_hash()
    if os.path.isfile(manifest_path) and not force:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if manifest.get("settings_hash") == settings_hash:
            logger.info("Reusing the toy world in %s (settings hash %s)", output_dir, settings_hash)
            return manifest
        raise FileExistsError(
            f"'{output_dir}' holds a toy world with settings hash {manifest.get('settings_hash')!r}, not "
            f"{settings_hash!r}; choose another `output_dir` or pass `force=True` to overwrite it."
        )
    os.makedirs(os.path.join(output_dir, "splits"), exist_ok=True)
    os.makedirs(os.path.join(output_dir, "labels"), exist_ok=True)
    dictionary = world_dictionary(config)
    write_class_file(os.path.join(output_dir, "labels", "actions.csv"), list(dictionary))
    write_class_file(os.path.join(output_dir, "labels", "actions_heldout.csv"), heldout_class_names(dictionary))
    write_class_file(os.path.join(output_dir, "labels", "novel_actions.csv"), list(TOY_NOVEL_ACTIONS))
    if config.compound_actions:
        labels = os.path.join(output_dir, "labels")
        write_class_file(os.path.join(labels, "novel_compound_actions.csv"), list(TOY_NOVEL_COMPOUND_ACTIONS))
        write_class_file(os.path.join(labels, "all_compound_actions.csv"), list(TOY_COMPOUND_ACTIONS))
    manifest = {"settings_hash": settings_hash, "config": dataclasses.asdict(config), "splits": {}}
    for split in world_splits(config):
        specs = sample_split_specs(config, split)
        lines, records = [], []
        for index, spec in enumerate(tqdm(specs, desc=f"Rendering toy {split} clips", disable=not specs)):
            relative = f"videos/{split}/{split}_{index:05d}.mp4"
            write_mp4(os.path.join(output_dir, relative), render_clip(spec, config), config.fps, config.crf)
            label = clip_label(spec, split)
            lines.append(f"{relative} {label}\n")
            records.append({"path": relative, "label": label, "spec": dataclasses.asdict(spec)})
        with open(os.path.join(output_dir, "splits", f"{split}.txt"), "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        manifest["splits"][split] = records
    # Written last: its presence marks a complete world.
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    logger.info(
        "Wrote %d train, %d test and %d novel-action test clips to %s",
        config.num_train,
        config.num_test,
        config.num_test_novel,
        output_dir,
    )
    return manifest


def load_world_specs(output_dir: str | os.PathLike, split: str) -> list[tuple[str, int, ClipSpec]]:
    """(relative path, label id, spec) for every clip of `split` of a generated world."""
    manifest_path = os.path.join(os.fspath(output_dir), "world.json")
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"No toy world at '{output_dir}' (missing world.json); run generate_toy_world first.")
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    if split not in manifest["splits"]:
        raise ValueError(f"`split` must be one of {sorted(manifest['splits'])}, got {split!r}.")
    return [(r["path"], r["label"], ClipSpec(**r["spec"])) for r in manifest["splits"][split]]


@dataclass
class ToyWorldArguments:
    output_dir: str = field(default="toy_world", metadata={"help": "Where to write the world."})
    force: bool = field(default=False, metadata={"help": "Overwrite a world generated with other settings."})


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ToyWorldArguments, ToyWorldConfig))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith((".json", ".yaml", ".yml")):
        args, config = (
            parser.parse_yaml_file(sys.argv[1])
            if not sys.argv[1].endswith(".json")
            else (parser.parse_json_file(sys.argv[1]))
        )
    else:
        args, config = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    return generate_toy_world(args.output_dir, config, force=args.force)


if __name__ == "__main__":
    main()
