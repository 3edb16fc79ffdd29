# SPDX-License-Identifier: Apache-2.0
"""What a conversion did: the [`ConversionReport`] saved next to the weights, and the model card telling where the
weights come from. Both are pushed with the weights, so neither holds a local path: the checkpoint is named by its
file name and SHA-256, a local base by its folder name."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..model_card import hub_model_id, render_model_card
from .key_mapping import LAYOUT_MAXI

__all__ = [
    "AUTHORS_REPOSITORY",
    "REPORT_FILE_NAME",
    "ConversionReport",
    "conversion_provenance",
    "file_sha256",
    "render_conversion_model_card",
    "report_reference",
]

REPORT_FILE_NAME = "conversion_report.json"
AUTHORS_REPOSITORY = "https://github.com/wlin-at/MAXI"


@dataclass
class ConversionReport:
    """Where every tensor of a converted model came from. Saved as `conversion_report.json` next to the weights.

    Attributes:
        checkpoint: file name of the converted checkpoint (no directory); `checkpoint_sha256`: its SHA-256.
        checkpoint_format: "torch", "torchscript" or "safetensors"; `layout`: "maxi", "openai" or "transformers".
        base: the base CLIP that filled what the checkpoint lacks: its Hub id, or `local:<folder name>`.
        ensemble_ratio: weight of the base in `ratio * base + (1 - ratio) * checkpoint`, or None when not ensembled.
        config_overrides: the video settings given to the converted config (frame_pooling, cross_frame_layers, ...).
        from_checkpoint: model tensor -> checkpoint key it came from.
        from_base: model tensors copied from the base because the checkpoint lacks them.
        initialised: model tensors neither in the checkpoint nor in the base (freshly initialised modules, e.g.
            cross-frame attention added on top of a plain CLIP).
        ignored: checkpoint keys that were skipped, with the reason.
    """

    checkpoint: str
    checkpoint_sha256: str
    checkpoint_format: str
    layout: str
    base: str
    ensemble_ratio: float | None
    config_overrides: dict
    from_checkpoint: dict[str, str] = field(default_factory=dict)
    from_base: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        summary = {
            "num_from_checkpoint": len(self.from_checkpoint),
            "num_from_base": len(self.from_base),
            "num_initialised": len(self.initialised),
            "num_ignored": len(self.ignored),
        }
        return {**asdict(self), "summary": summary}

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def conversion_provenance(report: ConversionReport, num_frames: int | None = None) -> str:
    """Markdown bullets stating where the weights of a converted model come from (for the model card); `num_frames`
    is the number of frames the saved processor samples per video, when a processor is saved with the model."""
    if report.ensemble_ratio is None:
        ensemble = "No weight-space ensembling was applied: the checkpoint's weights are kept as they are."
    else:
        ensemble = (
            f"Weight-space ensembling was applied: every parameter is `{report.ensemble_ratio:g} x base + "
            f"{1 - report.ensemble_ratio:g} x checkpoint` (the paper evaluates with 0.2 x the original CLIP)."
        )
    overrides = ", ".join(f"`{k}={v!r}`" for k, v in report.config_overrides.items()) or "the base's defaults"
    base = f"`{report.base}`" if hub_model_id(report.base) else f"a local folder `{report.base.removeprefix('local:')}`"
    lines = [
        f"- Converted with `modeling_maxi.conversion` from `{report.checkpoint}` (SHA-256 "
        f"`{report.checkpoint_sha256}`), a `{report.checkpoint_format}` file in the `{report.layout}` layout.",
        f"- {len(report.from_checkpoint)} tensors come from the checkpoint and {len(report.from_base)} from the base "
        f"model {base} because the checkpoint lacks them; {len(report.initialised)} are freshly initialised; "
        f"{len(report.ignored)} checkpoint entries were skipped as non-weights. Every tensor is listed in "
        f"`{REPORT_FILE_NAME}`.",
        f"- {ensemble}",
        f"- Video settings: {overrides}.",
    ]
    if num_frames is not None:
        lines.append(f"- Frames: the processor samples `num_frames={num_frames}` frames per video.")
    if report.layout == LAYOUT_MAXI:
        lines.insert(
            0,
            f"- Weights: the paper authors' released checkpoint ({AUTHORS_REPOSITORY}); see their repository for its "
            "terms of use. The token embedding, which the authors did not train or save, is the base CLIP's.",
        )
    return "\n".join(lines)


def render_conversion_model_card(
    report: ConversionReport, model_id: str, license: str = "other", num_frames: int | None = None
) -> str:
    """The model card (README.md) of a converted checkpoint, from the package's template. `num_frames`: frames the
    saved processor samples, if any."""
    from_authors = report.layout == LAYOUT_MAXI
    return render_model_card(
        model_id=model_id,
        base_model=hub_model_id(report.base),
        provenance=conversion_provenance(report, num_frames=num_frames),
        training_config="Not trained here: converted from an existing checkpoint (see Provenance).",
        dataset_link=f"the authors' text bags ({AUTHORS_REPOSITORY})" if from_authors else None,
        license=license,
    )


def report_reference(name_or_path: str | os.PathLike) -> str:
    """How the report names a model or file: a Hub id as is, a local path as `local:<name>`."""
    value = os.fspath(name_or_path)
    return hub_model_id(value) or f"local:{Path(os.path.expanduser(value)).name}"
