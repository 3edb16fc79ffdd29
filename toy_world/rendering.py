# SPDX-License-Identifier: Apache-2.0
"""Render the toy world's clips: what a scene looks like, frame by frame (`toy_world.world` says what is in it).

The object (one of `TOY_SHAPES`, `TOY_COLORS`, `TOY_TEXTURES`) is drawn over one of `TOY_BACKGROUNDS` at the
state `object_state` gives for each (possibly fractional) time, behind a short fading trail of its earlier states,
with the comic-style motion marks of its action (`draw_motion_marks`, inks in `TOY_MARK_INKS`) and the element of its
secondary novel action (`draw_novel_action`), then sensor noise. `render_clip` gives a clip's frames, `write_mp4`
writes them as H.264 with PyAV, and `frame_attributes` gives the words a caption of one frame may use.

Everything here is deterministic given a `ClipSpec` and a `ToyWorldConfig`: the cached worlds and base models are keyed
on `toy_world.world.WORLD_FORMAT_VERSION`, which must change whenever this module draws anything differently.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from toy_world.world import ClipSpec, ToyWorldConfig

TOY_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star")
TOY_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 185, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (155, 60, 205),
    "orange": (250, 140, 30),
}
TOY_TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
# Object colours and backgrounds share no colour with the motion marks' inks (`TOY_MARK_INKS`): with white objects, a
# black background or brick walls, the marks of blinking, bouncing and spinning were confused with the scene itself,
# errors that depend on each clip's scene rather than on its action (see the README's Status).
TOY_BACKGROUNDS: tuple[str, ...] = ("gray", "sand", "grass", "sky")


@dataclass
class ObjectState:
    """Where and how the object is drawn at one (possibly fractional) time."""

    x: float
    y: float
    radius: float
    rotation: float
    visible: float


def object_state(spec: ClipSpec, time: float, num_frames: int) -> ObjectState:
    """State of the object at `time` (in frames; values outside the clip extrapolate the motion, for trails)."""
    duration = max(num_frames - 1, 1)
    x = spec.start_x + spec.velocity_x * time
    y = spec.start_y + spec.velocity_y * time
    radius = spec.radius
    rotation = spec.rotation + spec.angular_velocity * time
    visible = 1.0
    motions = spec.motions
    if "growing" in motions or "shrinking" in motions:
        progress = time / duration
        radius = spec.radius * max(spec.scale_start + (spec.scale_end - spec.scale_start) * progress, 0.2)
    elif "blinking" in motions:
        cycle = (time / spec.blink_period + spec.blink_phase) % 1.0
        visible = 1.0 if cycle < 0.5 else 0.0
    elif "bouncing" in motions:
        y = y - spec.amplitude * abs(math.sin(math.pi * (spec.frequency * time + spec.phase)))
    elif "shaking" in motions:
        x = x + spec.amplitude * math.sin(2 * math.pi * (spec.frequency * time + spec.phase))
    return ObjectState(x=x, y=y, radius=radius, rotation=rotation, visible=visible)


def _shape_distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance (in radius units; negative inside) to a unit-sized shape."""
    if shape == "circle":
        return np.sqrt(u**2 + v**2) - 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.82
    if shape == "diamond":
        return (np.abs(u) + np.abs(v) - 1.15) / math.sqrt(2)
    if shape == "triangle":
        # Pointing towards negative v ("up" in image coordinates), centroid at the origin.
        return np.maximum(v - 0.55, (math.sqrt(3) * np.abs(u) - v) / 2 - 0.55)
    if shape == "cross":
        arm_a = np.maximum(np.abs(u) - 0.33, np.abs(v) - 1.0)
        arm_b = np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.33)
        return np.minimum(arm_a, arm_b)
    if shape == "star":
        rho = np.sqrt(u**2 + v**2)
        theta = np.arctan2(v, u)
        return (rho - (0.62 + 0.45 * np.cos(5 * theta))) * 0.6
    raise ValueError(f"Unknown shape {shape!r}; expected one of {TOY_SHAPES}.")


def _texture_mask(texture: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of the darker texture pixels, in object coordinates (so textures rotate with the object)."""
    if texture == "plain":
        return np.zeros(u.shape, dtype=bool)
    period = 0.7
    if texture == "striped":
        return np.floor(u / (period / 2)) % 2 == 0
    if texture == "checkered":
        return (np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2 == 0
    if texture == "dotted":
        du = (u / period) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        return du**2 + dv**2 < 0.07
    raise ValueError(f"Unknown texture {texture!r}; expected one of {TOY_TEXTURES}.")


def render_background(name: str, size: int, seed: int) -> np.ndarray:
    """A (size, size, 3) float background in [0, 255] for one of `TOY_BACKGROUNDS`."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if name == "gray":
        base = np.full((size, size, 3), 118.0, dtype=np.float32) + 10.0 * cols[..., None]
    elif name == "sand":
        base = np.array([200.0, 178.0, 135.0], dtype=np.float32) + rng.normal(0, 10, (size, size, 1)).astype(np.float32)
    elif name == "grass":
        base = np.array([45.0, 95.0, 40.0], dtype=np.float32) + rng.normal(0, 12, (size, size, 1)).astype(np.float32)
    elif name == "sky":
        top, bottom = np.array([80.0, 130.0, 200.0]), np.array([175.0, 205.0, 235.0])
        base = (top + (bottom - top) * rows[..., None]).astype(np.float32)
    else:
        raise ValueError(f"Unknown background {name!r}; expected one of {TOY_BACKGROUNDS}.")
    return np.clip(base, 0, 255)


def _draw_object(canvas: np.ndarray, spec: ClipSpec, state: ObjectState, opacity: float, grid: tuple) -> None:
    if opacity <= 0 or state.visible <= 0:
        return
    size = canvas.shape[0]
    # Every shape fits in a disc of 1.3 radii: draw only inside its bounding box.
    extent = 1.3 * state.radius + 2.0
    top, bottom = max(int(state.y - extent), 0), min(int(math.ceil(state.y + extent)) + 1, size)
    left, right = max(int(state.x - extent), 0), min(int(math.ceil(state.x + extent)) + 1, size)
    if top >= bottom or left >= right:
        return
    rows, cols = grid[0][top:bottom, left:right], grid[1][top:bottom, left:right]
    cos_r, sin_r = math.cos(state.rotation), math.sin(state.rotation)
    dx, dy = cols - state.x, rows - state.y
    u = (cos_r * dx + sin_r * dy) / state.radius
    v = (-sin_r * dx + cos_r * dy) / state.radius
    distance = _shape_distance(spec.shape, u, v) * state.radius
    coverage = np.clip(0.5 - distance, 0.0, 1.0) * (opacity * state.visible)
    if not coverage.any():
        return
    color = np.asarray(TOY_COLORS[spec.color], dtype=np.float32)
    pattern = _texture_mask(spec.texture, u, v, state.radius)
    fill = np.where(pattern[..., None], color * 0.45, color)
    alpha = coverage[..., None]
    region = canvas[top:bottom, left:right]
    region *= 1.0 - alpha
    region += alpha * fill


# Appearance words for each action's motion marks: what a caption writer sees in one still frame, without naming the
# action (as web captions say "a man holding a bow" rather than "archery").
TOY_MARK_DESCRIPTIONS: dict[str, str] = {
    "moving left": "with cyan arrowheads on its right",
    "moving right": "with magenta arrowheads on its left",
    "moving up": "with lime arrowheads below it",
    "moving down": "with pink arrowheads above it",
    "growing": "with teal arrowheads at its corners",
    "shrinking": "with navy arrowheads at its corners",
    "spinning": "with brown arcs around it",
    "blinking": "with white rays around it",
    "bouncing": "above a black line",
    "shaking": "with plum zigzags on both sides",
}
# Ink of each action's marks (named in the descriptions above). A distinct ink per action keeps the visual side of the
# toy task within reach of the tiny CPU models (with one black/white ink they learned neither shapes nor marks in the
# time budget), so that the demo exercises what MAXI changes: the link between action words and what frames show.
TOY_MARK_INKS: dict[str, tuple[float, float, float]] = {
    "moving left": (0.0, 225.0, 225.0),
    "moving right": (230.0, 0.0, 190.0),
    "moving up": (150.0, 255.0, 0.0),
    "moving down": (255.0, 150.0, 200.0),
    "growing": (0.0, 128.0, 128.0),
    "shrinking": (25.0, 25.0, 130.0),
    "spinning": (125.0, 70.0, 20.0),
    "blinking": (255.0, 255.0, 255.0),
    "bouncing": (0.0, 0.0, 0.0),
    "shaking": (100.0, 0.0, 100.0),
}


def _chevron(draw, x: float, y: float, size: float, direction: tuple[float, float], width: int) -> None:
    """A ">"-shaped arrowhead centred at (x, y) pointing along `direction` (a unit vector)."""
    dx, dy = direction
    px, py = -dy, dx
    tip = (x + dx * size, y + dy * size)
    wing_a = (x - dx * size + px * size, y - dy * size + py * size)
    wing_b = (x - dx * size - px * size, y - dy * size - py * size)
    draw.line([wing_a, tip, wing_b], fill=255, width=width)


def draw_motion_marks(
    canvas: np.ndarray, spec: ClipSpec, state: ObjectState, time: float, unit: float, mark_width: float = 4.0
) -> None:
    """Draw the comic-style motion marks of `spec.action` around the object, in place.

    Every frame of a clip carries them, as motion blur and body pose let one real frame show an action: arrowheads
    trailing a moving object and pointing its way, outward/inward arrowheads for growing/shrinking, arcs for spinning,
    rays for blinking (drawn even while the object is off), a floor line under a bouncing object, zigzags for
    shaking. Each action has its own ink (`TOY_MARK_INKS`); a compound action draws the marks of both its parts.
    """
    for motion in spec.motions:
        _draw_marks_of(canvas, motion, spec, state, time, unit, mark_width)


def _draw_marks_of(
    canvas: np.ndarray, action: str, spec: ClipSpec, state: ObjectState, time: float, unit: float, mark_width: float
) -> None:
    """The motion marks of one single `action` of the clip `spec`, in its ink."""
    from PIL import Image, ImageDraw

    size = canvas.shape[0]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    width = max(int(round(mark_width * unit)), 1)
    arrow = (2.0 + 0.5 * mark_width) * unit
    x, y, radius = state.x, state.y, state.radius
    directions = {
        "moving left": (-1.0, 0.0),
        "moving right": (1.0, 0.0),
        "moving up": (0.0, -1.0),
        "moving down": (0.0, 1.0),
    }
    if action in directions:
        dx, dy = directions[action]
        for k in (1, 2, 3):
            offset = radius + 1.0 * unit + 5.0 * unit * k
            _chevron(draw, x - dx * offset, y - dy * offset, arrow, (dx, dy), width)
    elif action in ("growing", "shrinking"):
        sign = 1.0 if action == "growing" else -1.0
        for k in range(4):
            angle = math.pi / 4 + k * math.pi / 2
            cx, cy = math.cos(angle), math.sin(angle)
            reach = radius * 1.3 + 5.0 * unit
            _chevron(draw, x + cx * reach, y + cy * reach, arrow, (sign * cx, sign * cy), width)
    elif action == "spinning":
        reach = radius * 1.3 + 4.0 * unit
        start = math.degrees(state.rotation)
        for k in range(3):
            draw.arc(
                [x - reach, y - reach, x + reach, y + reach],
                start + 120 * k,
                start + 120 * k + 60,
                fill=255,
                width=width,
            )
    elif action == "blinking":
        inner, outer = radius * 1.3 + 2.0 * unit, radius * 1.3 + 6.0 * unit
        for k in range(8):
            angle = k * math.pi / 4
            draw.line(
                [
                    (x + math.cos(angle) * inner, y + math.sin(angle) * inner),
                    (x + math.cos(angle) * outer, y + math.sin(angle) * outer),
                ],
                fill=255,
                width=width,
            )
    elif action == "bouncing":
        # Under the object's resting height (which a vertical translation moves along).
        floor = min(spec.start_y + spec.velocity_y * time + radius * 1.3 + 2.0 * unit, size - 2.0 * unit)
        draw.line([(2 * unit, floor), (size - 2 * unit, floor)], fill=255, width=width)
    elif action == "shaking":
        for side in (-1.0, 1.0):
            zx = x + side * (radius * 1.3 + 4.0 * unit)
            step = 3.0 * unit
            draw.line(
                [(zx, y - 2 * step), (zx + step, y - step), (zx - step, y), (zx + step, y + step), (zx, y + 2 * step)],
                fill=255,
                width=width,
            )
    paint_mask(canvas, mask, TOY_MARK_INKS[action], spec.action_visibility)


def paint_mask(canvas: np.ndarray, mask, ink: tuple[float, float, float], opacity: float = 1.0) -> None:
    """Blend `ink` into `canvas` in place where the PIL "L" `mask` is drawn, at `opacity`."""
    alpha = np.asarray(mask, dtype=np.float32)[..., None] * (opacity / 255.0)
    if not alpha.any():
        return
    canvas *= 1.0 - alpha
    canvas += alpha * np.asarray(ink, dtype=np.float32)


# Appearance words of each novel action's element, and its ink (kept apart from the object colours and mark inks).
TOY_NOVEL_DESCRIPTIONS: dict[str, str] = {
    "orbiting": "with a maroon dot beside it",
    "waving": "with a cream flag above it",
    "leaking": "with olive drops below it",
}
TOY_NOVEL_INKS: dict[str, tuple[float, float, float]] = {
    "orbiting": (130.0, 0.0, 30.0),
    "waving": (255.0, 240.0, 170.0),
    "leaking": (125.0, 125.0, 0.0),
}


def draw_novel_action(canvas: np.ndarray, spec: ClipSpec, state: ObjectState, time: float, unit: float) -> None:
    """Draw the secondary novel action of `spec` (if any) around the object, in place: a dot circling the object
    (orbiting), a flag on a pole above it whose free end swings up and down (waving), drops falling from under it
    (leaking). Each moves over the clip, so one still shows where it is, and the frames show how it moves."""
    if not spec.novel_action:
        return
    from PIL import Image, ImageDraw

    size = canvas.shape[0]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    x, y, radius, phase = state.x, state.y, spec.radius, spec.novel_phase
    if spec.novel_action == "orbiting":
        reach, dot = radius * 1.3 + 6.0 * unit, 4.5 * unit
        angle = phase + 0.7 * time
        cx, cy = x + reach * math.cos(angle), y + reach * math.sin(angle)
        draw.ellipse([cx - dot, cy - dot, cx + dot, cy + dot], fill=255)
    elif spec.novel_action == "waving":
        top, base = y - radius * 1.3 - 11.0 * unit, y - radius * 1.3 - 1.0 * unit
        draw.line([(x, base), (x, top)], fill=255, width=max(int(round(2.0 * unit)), 1))
        swing = 4.0 * unit * math.sin(phase + 1.6 * time)
        draw.polygon([(x, top), (x + 13.0 * unit, top + 4.0 * unit + swing), (x, top + 9.0 * unit)], fill=255)
    else:  # leaking
        fall, drop = 14.0 * unit, 3.5 * unit
        for k in range(2):
            offset = (2.0 * unit * time + phase / (2 * math.pi) * fall + k * fall / 2) % fall
            cy = y + radius * 1.3 + 2.0 * unit + offset
            draw.ellipse([x - drop, cy - drop, x + drop, cy + drop], fill=255)
    paint_mask(canvas, mask, TOY_NOVEL_INKS[spec.novel_action])


def render_frame(
    spec: ClipSpec, time: float, config: ToyWorldConfig, background: np.ndarray | None = None
) -> np.ndarray:
    """Render the frame at `time` (in frames) as uint8 (H, W, 3) RGB, trail and sensor noise included."""
    size = config.frame_size
    if background is None:
        background = render_background(spec.background, size, spec.background_seed)
    canvas = background.copy()
    grid = tuple(np.mgrid[0:size, 0:size].astype(np.float32) + 0.5)
    for ghost in range(config.trail_length, 0, -1):
        opacity = config.trail_opacity * spec.action_visibility * (1.0 - (ghost - 1) / config.trail_length)
        past = object_state(spec, time - ghost * config.trail_spacing, config.num_frames)
        _draw_object(canvas, spec, past, opacity, grid)
    state = object_state(spec, time, config.num_frames)
    if config.motion_marks:
        draw_motion_marks(canvas, spec, state, time, size / 64.0, config.mark_width)
    draw_novel_action(canvas, spec, state, time, size / 64.0)
    _draw_object(canvas, spec, state, 1.0, grid)
    canvas *= spec.brightness
    if config.noise_std > 0:
        noise_rng = np.random.default_rng([spec.background_seed, int(round(time * 1000)) % (2**31)])
        canvas += noise_rng.normal(0.0, config.noise_std, canvas.shape).astype(np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render_clip(spec: ClipSpec, config: ToyWorldConfig) -> np.ndarray:
    """All frames of a clip as uint8 (T, H, W, 3) RGB."""
    background = render_background(spec.background, config.frame_size, spec.background_seed)
    return np.stack([render_frame(spec, t, config, background) for t in range(config.num_frames)])


def frame_attributes(spec: ClipSpec, time: float, config: ToyWorldConfig) -> dict[str, str]:
    """Caption-ready words for the frame at `time`: colour, shape, texture, background, position, size, action (and
    the compound action's manner, "" in the world of single actions)."""
    state = object_state(spec, time, config.num_frames)
    third = config.frame_size / 3
    horizontal = "left" if state.x < third else ("right" if state.x > 2 * third else "center")
    vertical = "top" if state.y < third else ("bottom" if state.y > 2 * third else "middle")
    relative = state.radius / config.frame_size
    size = "small" if relative < 0.11 else ("large" if relative > 0.16 else "medium")
    return {
        "color": spec.color,
        "shape": spec.shape,
        "texture": spec.texture,
        "background": spec.background,
        "horizontal": horizontal,
        "vertical": vertical,
        "size": size,
        "action": spec.action_name,
        "manner": spec.manner,
        "visible": "yes" if state.visible > 0 else "no",
        "marks": " and ".join(TOY_MARK_DESCRIPTIONS[m] for m in spec.motions) if config.motion_marks else "",
        "novel_action": spec.novel_action,
    }


def write_mp4(path: str, frames: np.ndarray, fps: int = 8, crf: int = 18) -> str:
    """Write uint8 (T, H, W, 3) RGB frames as an H.264 mp4 with PyAV."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"`frames` must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
