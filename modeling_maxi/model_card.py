# SPDX-License-Identifier: Apache-2.0
"""Render the repository's model-card template (``model_card.md``) for exported and converted checkpoints."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

__all__ = [
    "MAXI_CITATION",
    "PAPER_ZERO_SHOT_RESULTS",
    "default_template_path",
    "format_eval_table",
    "format_paper_results",
    "render_model_card",
]

MAXI_CITATION = """@inproceedings{lin2023match,
  title     = {MAtch, eXpand and Improve: Unsupervised Finetuning for Zero-Shot Action Recognition with
               Language Knowledge},
  author    = {Lin, Wei and Karlinsky, Leonid and Shvetsova, Nina and Possegger, Horst and Kozinski, Mateusz and
               Panda, Rameswar and Feris, Rogerio and Kuehne, Hilde and Bischof, Horst},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2023}
}"""

#: Zero-shot results of MAXI (ViT-B/16, 16 frames, K400 dict. + GPT3 verbs + BLIP verbs, p = 0.9), paper Tables 1-2.
PAPER_ZERO_SHOT_RESULTS: tuple[tuple[str, str, str], ...] = (
    ("UCF101", "top-1 (3 splits)", "78.2 ± 0.8"),
    ("HMDB51", "top-1 (3 splits)", "52.2 ± 0.6"),
    ("Kinetics-600 (novel classes)", "top-1 / top-5", "71.4 ± 0.9 / 92.5 ± 0.3"),
    ("Charades", "mAP", "23.79"),
    ("Moments-in-Time", "top-1 / top-5", "22.91 / 46.38"),
    ("MiniSSv2", "top-1 / top-5", "6.37 / 18.73"),
    ("UAV-Human", "top-1 / top-5", "2.72 / 9.00"),
)

_FIELDS = (
    "model_id",
    "base_model",
    "license",
    "datasets_metadata",
    "dataset_link",
    "provenance",
    "training_config",
    "eval_table",
    "paper_results",
    "citation",
)


def default_template_path() -> Path:
    """``model_card.md`` at the root of the repository checkout (next to the ``modeling_maxi`` package)."""
    return Path(__file__).resolve().parent.parent / "model_card.md"


def format_paper_results(rows: Sequence[tuple[str, str, str]] = PAPER_ZERO_SHOT_RESULTS) -> str:
    """Markdown table of the numbers the paper reports, labelled as the authors' results."""
    lines = [
        "These are the authors' numbers for their ViT-B/16 model (16 frames, single view), not measurements of this",
        "checkpoint.",
        "",
        "| Dataset | Metric | MAXI (paper) |",
        "|---|---|---|",
    ]
    lines += [f"| {dataset} | {metric} | {value} |" for dataset, metric, value in rows]
    return "\n".join(lines)


def format_eval_table(results: Mapping[str, Mapping[str, float]] | None) -> str:
    """Markdown table of measured results, ``{dataset: {metric: value}}``; None says that nothing was evaluated."""
    if not results:
        return "Not evaluated yet."
    if not isinstance(results, Mapping):
        raise ValueError(f"eval results must map dataset -> {{metric: value}}, got {type(results).__name__}.")
    lines = ["| Dataset | Metric | Value |", "|---|---|---|"]
    for dataset, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"eval results for {dataset!r} must map metric -> value, got {metrics!r}.")
        for metric, value in metrics.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            lines.append(f"| {dataset} | {metric} | {shown} |")
    return "\n".join(lines)


def _format_training_config(config: Mapping | str | None) -> str:
    if config is None:
        return "Not recorded."
    if isinstance(config, str):
        return config
    if not isinstance(config, Mapping):
        raise ValueError(f"training_config must be a mapping or a string, got {type(config).__name__}.")
    plain = json.loads(json.dumps(dict(config), default=str))
    return "```yaml\n" + yaml.safe_dump(plain, sort_keys=True).rstrip() + "\n```"


def render_model_card(
    model_id: str,
    base_model: str,
    provenance: str,
    training_config: Mapping | str | None = None,
    dataset_link: str | None = None,
    dataset_name: str | None = None,
    eval_table: str | Mapping[str, Mapping[str, float]] | None = None,
    paper_results: str | None = None,
    citation: str = MAXI_CITATION,
    license: str = "mit",
    template: str | Path | None = None,
) -> str:
    """Fill the model-card template.

    Args:
        model_id (`str`): Hub id (or local name) of the checkpoint, used in the title and the usage snippet.
        base_model (`str`): the model fine-tuned or converted from (Hub metadata `base_model`).
        provenance (`str`): markdown describing where the weights come from (training run, conversion, ensembling).
        training_config (`dict` or `str`, *optional*): the training settings, rendered as YAML.
        dataset_link (`str`, *optional*): link to the text-bag dataset card; `dataset_name` its Hub id
            (front-matter `datasets`; leave None for local data).
        eval_table (`str` or `dict`, *optional*): measured results, as markdown or ``{dataset: {metric: value}}``;
            None renders "Not evaluated yet.".
        paper_results (`str`, *optional*): markdown of the paper's numbers; defaults to :func:`format_paper_results`.
        citation (`str`): BibTeX entry.
        license (`str`): Hub license id.
        template (`str` or `Path`, *optional*): template file; defaults to the repository's ``model_card.md``.

    Returns:
        `str`: the model card (README.md), YAML front matter included.
    """
    for name, value in (("model_id", model_id), ("base_model", base_model), ("provenance", provenance)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    template_path = Path(template) if template is not None else default_template_path()
    if not template_path.is_file():
        raise FileNotFoundError(f"Model card template not found: {template_path}.")
    text = template_path.read_text(encoding="utf-8")
    used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    unknown = sorted(used - set(_FIELDS))
    if unknown:
        raise ValueError(f"Template {template_path} uses unknown field(s) {unknown}; known: {list(_FIELDS)}.")
    fields = {
        "model_id": model_id,
        "base_model": base_model,
        "license": license,
        "datasets_metadata": f"datasets:\n- {dataset_name}\n" if dataset_name else "",
        "dataset_link": dataset_link or "not recorded",
        "provenance": provenance.strip(),
        "training_config": _format_training_config(training_config),
        "eval_table": eval_table if isinstance(eval_table, str) else format_eval_table(eval_table),
        "paper_results": paper_results if paper_results is not None else format_paper_results(),
        "citation": citation.strip(),
    }
    return text.format(**fields)
