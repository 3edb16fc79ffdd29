# SPDX-License-Identifier: Apache-2.0
"""Aggregation of per-split results (mean ± std over splits, as the protocol reports them) and their output as JSON and
as a Markdown table ready for a model card."""

import json
import math
from pathlib import Path

import numpy as np

SINGLE_LABEL_METRICS = ("top1", "top5")
MULTI_LABEL_METRICS = ("mAP",)
COUNT_KEYS = ("num_videos", "num_evaluated", "num_missing", "num_unreadable")


def summarize_splits(split_results: dict[str, dict]) -> dict:
    """
    Mean and standard deviation over splits of every metric the splits share, plus summed video counts.

    The standard deviation is the population one (`ddof=0`); with one split it is 0.

    Args:
        split_results: Split name -> the dict of [`score_predictions`].

    Returns:
        `{"<metric>": {"mean": ..., "std": ...}, ..., "num_splits": n, "num_videos": ..., "num_evaluated": ...,
        "num_missing": ..., "num_unreadable": ...}`.
    """
    if not split_results:
        raise ValueError("`split_results` is empty: nothing to summarize.")
    metric_names = [
        name for name in (*SINGLE_LABEL_METRICS, *MULTI_LABEL_METRICS) if all(name in r for r in split_results.values())
    ]
    extra = sorted(
        {k for r in split_results.values() for k in r if k.startswith("top") and k not in SINGLE_LABEL_METRICS}
    )
    metric_names += [name for name in extra if all(name in r for r in split_results.values())]
    if not metric_names:
        raise ValueError(f"The split results share no metric: {[sorted(r) for r in split_results.values()]}.")
    summary = {}
    for name in metric_names:
        values = np.asarray([r[name] for r in split_results.values()], dtype=np.float64)
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=0))}
    summary["num_splits"] = len(split_results)
    for key in COUNT_KEYS:
        summary[key] = int(sum(r.get(key, 0) for r in split_results.values()))
    return summary


def _cell(summary: dict, name: str, show_std: bool) -> str:
    if name not in summary:
        return "-"
    mean, std = summary[name]["mean"], summary[name]["std"]
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.1f} ± {std:.1f}" if show_std else f"{mean:.1f}"


def format_markdown_table(results: list[dict] | dict) -> str:
    """
    A Markdown table with one row per evaluated dataset: top-1 / top-5 (single-label) or mAP (multi-label), as
    mean ± std when several splits were evaluated, the number of splits and the videos scored / listed.

    Args:
        results: One or several result dicts of [`build_results`].
    """
    if isinstance(results, dict):
        results = [results]
    if not results:
        raise ValueError("`results` is empty: nothing to tabulate.")
    lines = [
        "| Dataset | Splits | Frames | Top-1 (%) | Top-5 (%) | mAP (%) | Videos scored / listed |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        summary = result["summary"]
        show_std = summary["num_splits"] > 1
        lines.append(
            "| {dataset} | {splits} | {frames} | {top1} | {top5} | {mAP} | {scored} / {listed} |".format(
                dataset=result.get("display_name", result["dataset"]),
                splits=", ".join(result["splits"]),
                frames=result.get("num_frames", "-"),
                top1=_cell(summary, "top1", show_std),
                top5=_cell(summary, "top5", show_std),
                mAP=_cell(summary, "mAP", show_std),
                scored=summary["num_evaluated"],
                listed=summary["num_videos"],
            )
        )
    notes = [
        f"{r.get('display_name', r['dataset'])}: {r['summary']['num_missing']} missing and "
        f"{r['summary']['num_unreadable']} unreadable videos were left out."
        for r in results
        if r["summary"]["num_missing"] or r["summary"]["num_unreadable"]
    ]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def build_results(dataset: str, display_name: str, split_results: dict[str, dict], **run_info) -> dict:
    """The JSON-ready results of one dataset: run information, per-split results and their summary."""
    return {
        "dataset": dataset,
        "display_name": display_name,
        **run_info,
        "splits": {name: split_results[name] for name in split_results},
        "summary": summarize_splits(split_results),
    }


def save_results(results: dict, output_dir: str | Path, stem: str | None = None) -> tuple[Path, Path]:
    """Writes `<stem>.json` and `<stem>.md` (the Markdown table) into `output_dir`; returns both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"zero_shot_{results['dataset']}"
    json_path = output_dir / f"{stem}.json"
    markdown_path = output_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(format_markdown_table(results), encoding="utf-8")
    return json_path, markdown_path


__all__ = ["build_results", "format_markdown_table", "save_results", "summarize_splits"]
