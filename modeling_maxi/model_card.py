# SPDX-License-Identifier: Apache-2.0
"""The model card (README.md) of exported and converted checkpoints: the package's template (``data/model_card.md``)
under Hub metadata built with huggingface_hub's `ModelCardData`, evaluation results as `EvalResult` entries
(`model-index`), and no local path anywhere."""

from __future__ import annotations

import json
import math
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

__all__ = [
    "CARD_TAGS",
    "MAXI_CITATION",
    "PAPER_ZERO_SHOT_RESULTS",
    "add_evaluation_to_model_card",
    "build_card_data",
    "default_template_path",
    "eval_results_from_evaluation",
    "format_eval_results",
    "format_paper_results",
    "hub_model_id",
    "model_card_path",
    "public_reference",
    "render_model_card",
    "without_local_paths",
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

CARD_TAGS = ("video", "zero-shot-video-classification", "action-recognition", "clip", "maxi")
PIPELINE_TAG = "video-classification"
EVAL_TASK_TYPE = "video-classification"
EVAL_TASK_NAME = "Zero-shot action recognition"
# metric key of the evaluation JSON -> (Hub metric id, pretty name)
EVAL_METRICS = {
    "top1": ("accuracy", "Top-1 accuracy (%)"),
    "top5": ("top_5_accuracy", "Top-5 accuracy (%)"),
    "mAP": ("mean_average_precision", "mAP (%)"),
}
NOT_EVALUATED = "Not evaluated yet."
_EVALUATION_START = "<!-- maxi:evaluation:start -->"
_EVALUATION_END = "<!-- maxi:evaluation:end -->"

_FIELDS = (
    "model_id",
    "provenance",
    "dataset_link",
    "training_config",
    "evaluation",
    "paper_results",
    "citation",
)


# --------------------------------------------------------------------------------------------------------------------
# No local path in a card: Hub ids stay, local folders and files are named only
# --------------------------------------------------------------------------------------------------------------------


def _is_local_path(value: str) -> bool:
    return os.path.isabs(value) or value.startswith(("./", "../", "~", ".\\")) or os.path.exists(value)


def hub_model_id(name_or_path: str | os.PathLike | None) -> str | None:
    """`name_or_path` when it is a Hub repository id, `None` for a local folder or file (or anything else): the value
    of the card's `base_model`, which must name a model on the Hub."""
    if name_or_path is None:
        return None
    value = os.fspath(name_or_path)
    if not value.strip() or _is_local_path(value):
        return None
    try:
        validate_repo_id(value)
    except HFValidationError:
        return None
    return value


def public_reference(name_or_path: str | os.PathLike) -> str:
    """How a card's text names a checkpoint or dataset (markdown): `` `org/name` `` for a Hub id, ``a local folder
    `<name>` `` for a local path."""
    value = os.fspath(name_or_path)
    hub_id = hub_model_id(value)
    if hub_id is not None:
        return f"`{hub_id}`"
    name = Path(os.path.expanduser(value)).name or value
    return f"a local folder `{name}`"


def without_local_paths(value):
    """`value` (a mapping, list or scalar, as in a training configuration) with every local path replaced by
    ``local:<name>``, so that a card carries no path of the machine it was written on."""
    if isinstance(value, Mapping):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_local_paths(item) for item in value]
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value and _is_local_path(value)):
        return f"local:{Path(os.path.expanduser(os.fspath(value))).name}"
    return value


# --------------------------------------------------------------------------------------------------------------------
# Results: the paper's (prose only) and the measured ones (prose and model-index)
# --------------------------------------------------------------------------------------------------------------------


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


def _one_evaluation(result: Mapping) -> list[EvalResult]:
    if not isinstance(result, Mapping):
        raise ValueError(f"An evaluation result must be the JSON object of one dataset, got {type(result).__name__}.")
    missing = [key for key in ("dataset", "splits", "summary") if key not in result]
    if missing:
        raise ValueError(f"The evaluation result lacks {missing}: expected the JSON of training/evaluate_zero_shot.py.")
    summary, splits = result["summary"], list(result["splits"])
    metrics = [name for name in EVAL_METRICS if isinstance(summary.get(name), Mapping)]
    if not metrics:
        raise ValueError(f"The evaluation of {result['dataset']!r} has none of the metrics {list(EVAL_METRICS)}.")
    entries = []
    for name in metrics:
        mean, std = float(summary[name]["mean"]), float(summary[name].get("std", 0.0))
        if not math.isfinite(mean):
            continue
        metric_type, pretty = EVAL_METRICS[name]
        if len(splits) > 1:
            pretty = f"{pretty}, mean of {len(splits)} splits (std {std:.2f})"
        entries.append(
            EvalResult(
                task_type=EVAL_TASK_TYPE,
                task_name=EVAL_TASK_NAME,
                dataset_type=str(result["dataset"]),
                dataset_name=str(result.get("display_name") or result["dataset"]),
                dataset_split=",".join(str(split) for split in splits),
                metric_type=metric_type,
                metric_name=pretty,
                metric_value=round(mean, 2),
            )
        )
    return entries


def eval_results_from_evaluation(results: Mapping | Sequence[Mapping]) -> list[EvalResult]:
    """
    The `EvalResult` entries (Hub `model-index`) of one or several evaluations written by
    `training/evaluate_zero_shot.py` (`zero_shot_<dataset>.json`): one entry per metric (top-1, top-5 or mAP, in
    percent, the mean over the evaluated splits rounded to 2 decimals).
    """
    if isinstance(results, Mapping):
        results = [results]
    return [entry for result in results for entry in _one_evaluation(result)]


def format_eval_results(eval_results: Sequence[EvalResult] | None) -> str:
    """Markdown table of measured results; "Not evaluated yet." when there are none."""
    if not eval_results:
        return NOT_EVALUATED
    lines = ["| Dataset | Splits | Metric | Value |", "|---|---|---|---|"]
    for entry in eval_results:
        value = f"{entry.metric_value:.2f}" if isinstance(entry.metric_value, float) else str(entry.metric_value)
        lines.append(f"| {entry.dataset_name} | {entry.dataset_split or '-'} | {entry.metric_name} | {value} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------------------


def default_template_path() -> Path:
    """The package's model-card template, ``modeling_maxi/data/model_card.md`` (installed with the package)."""
    return Path(__file__).resolve().parent / "data" / "model_card.md"


def build_card_data(
    model_id: str,
    base_model: str | None,
    license: str = "mit",
    dataset_name: str | None = None,
    eval_results: Sequence[EvalResult] | None = None,
) -> ModelCardData:
    """The card's Hub metadata. `base_model` and `dataset_name` are kept only when they are Hub ids (a local base or
    dataset is left out: the Hub would read it as a broken link)."""
    hub_dataset = hub_model_id(dataset_name)
    return ModelCardData(
        library_name="transformers",
        license=license,
        pipeline_tag=PIPELINE_TAG,
        tags=list(CARD_TAGS),
        base_model=hub_model_id(base_model),
        datasets=[hub_dataset] if hub_dataset else None,
        model_name=model_id if eval_results else None,  # the name the model-index gives the results
        eval_results=list(eval_results) if eval_results else None,
    )


def _format_training_config(config: Mapping | str | None) -> str:
    if config is None:
        return "Not recorded."
    if isinstance(config, str):
        return config
    if not isinstance(config, Mapping):
        raise ValueError(f"training_config must be a mapping or a string, got {type(config).__name__}.")
    plain = without_local_paths(json.loads(json.dumps(dict(config), default=str)))
    return "```yaml\n" + yaml.safe_dump(plain, sort_keys=True).rstrip() + "\n```"


def _read_template(template: str | Path | None) -> str:
    template_path = Path(template) if template is not None else default_template_path()
    if not template_path.is_file():
        raise FileNotFoundError(f"Model card template not found: {template_path}.")
    text = template_path.read_text(encoding="utf-8")
    used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    unknown = sorted(used - set(_FIELDS))
    if unknown:
        raise ValueError(f"Template {template_path} uses unknown field(s) {unknown}; known: {list(_FIELDS)}.")
    return text


def render_model_card(
    model_id: str,
    base_model: str | None,
    provenance: str,
    training_config: Mapping | str | None = None,
    dataset_link: str | None = None,
    dataset_name: str | None = None,
    eval_results: Sequence[EvalResult] | None = None,
    paper_results: str | None = None,
    citation: str = MAXI_CITATION,
    license: str = "mit",
    template: str | Path | None = None,
) -> str:
    """Fill the model-card template under its Hub metadata.

    Args:
        model_id (`str`): Hub id (or local name) of the checkpoint, used in the title and the usage snippets.
        base_model (`str`, *optional*): the model fine-tuned or converted from; in the metadata only when a Hub id.
        provenance (`str`): markdown describing where the weights come from (training run, conversion, ensembling).
        training_config (`dict` or `str`, *optional*): the training settings, rendered as YAML (local paths are
            reduced to their names).
        dataset_link (`str`, *optional*): where the text-bag dataset is described; `dataset_name` its Hub id
            (metadata `datasets`; a local dataset is left out).
        eval_results (`list[EvalResult]`, *optional*): measured results (`eval_results_from_evaluation`), written to
            the `model-index` metadata and the Evaluation table; none renders "Not evaluated yet.".
        paper_results (`str`, *optional*): markdown of the paper's numbers; defaults to :func:`format_paper_results`.
        citation (`str`): BibTeX entry.
        license (`str`): Hub license id.
        template (`str` or `Path`, *optional*): template file; defaults to the package's ``data/model_card.md``.

    Returns:
        `str`: the model card (README.md), YAML front matter included.
    """
    for name, value in (("model_id", model_id), ("provenance", provenance)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    if base_model is not None and (not isinstance(base_model, str) or not base_model.strip()):
        raise ValueError(f"`base_model` must be None or a non-empty string, got {base_model!r}.")
    body = _read_template(template).format(
        model_id=model_id,
        provenance=provenance.strip(),
        dataset_link=dataset_link or "not recorded",
        training_config=_format_training_config(training_config),
        evaluation=format_eval_results(eval_results),
        paper_results=paper_results if paper_results is not None else format_paper_results(),
        citation=citation.strip(),
    )
    data = build_card_data(model_id, base_model, license, dataset_name, eval_results)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def _merged(existing: Sequence[EvalResult], added: Sequence[EvalResult]) -> list[EvalResult]:
    """`existing` with every entry `added` re-measures replaced (same task, dataset, splits and metric), plus the
    new ones, in order."""

    def key(entry: EvalResult) -> tuple:
        return (*entry.unique_identifier, entry.metric_type)

    replaced = {key(entry): entry for entry in added}
    merged = [replaced.pop(key(entry), entry) for entry in existing]
    return merged + [entry for entry in added if key(entry) in replaced]


def model_card_path(checkpoint: str | os.PathLike) -> Path:
    """The model card (README.md) of a local checkpoint folder, or of the card file given itself; `FileNotFoundError`
    naming the value when there is none (e.g. a Hub id: its card is updated on the Hub, not here)."""
    path = Path(os.path.expanduser(os.fspath(checkpoint)))
    if path.is_dir():
        path = path / "README.md"
    if not path.is_file():
        raise FileNotFoundError(
            f"No model card at {str(path)!r}: the results go into a local checkpoint folder holding README.md "
            "(export or convert the checkpoint first)."
        )
    return path


def add_evaluation_to_model_card(card_path: str | os.PathLike, results: Mapping | Sequence[Mapping]) -> ModelCard:
    """
    Writes evaluation results into a model card: its `model-index` metadata (through `ModelCardData.eval_results`,
    so `ModelCard.load(card_path).data.eval_results` returns them) and the table of its Evaluation section. Results
    of a dataset, splits and metric already in the card are replaced; the others are kept.

    Args:
        card_path (`str` or `os.PathLike`): the card (a checkpoint's README.md) or the checkpoint folder.
        results (`dict` or `list[dict]`): the JSON of `training/evaluate_zero_shot.py`, one dict per dataset.

    Returns:
        The updated `ModelCard` (also saved to `card_path`).
    """
    path = model_card_path(card_path)
    card = ModelCard.load(path)
    card.data.eval_results = _merged(card.data.eval_results or [], eval_results_from_evaluation(results))
    text = card.text
    if not card.data.model_name:
        titles = [line[2:].strip() for line in text.splitlines() if line.startswith("# ")]
        card.data.model_name = titles[0] if titles else path.parent.name
    table = format_eval_results(card.data.eval_results)
    if _EVALUATION_START in text and _EVALUATION_END in text:
        head, rest = text.split(_EVALUATION_START, 1)
        text = f"{head}{_EVALUATION_START}\n{table}\n{_EVALUATION_END}{rest.split(_EVALUATION_END, 1)[1]}"
    else:
        text = f"{text.rstrip()}\n\n## Evaluation\n\n{_EVALUATION_START}\n{table}\n{_EVALUATION_END}\n"
    card = ModelCard(f"---\n{card.data.to_yaml()}\n---\n{text}")
    card.save(path)
    return card
