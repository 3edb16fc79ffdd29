# SPDX-License-Identifier: Apache-2.0
"""Diagnosis of the toy claim: how much of the fine-tuning result is owed to the pseudo-labels' errors?

For one seed of the demo world, fine-tunes the base model several times on the *same* kept videos with the same recipe:
on the text bags the pipeline built (CLIP-matched pseudo-labels, as MAXI does); on the same pseudo-labels with the
bare class prompt only (``--text_sources dictionary``: what the bag texts add or cost); on the pipeline's bags plus
the verbs a perfect captioner would add to each video (its ground-truth action's verbs: the most that evidence per
video can bring while the pseudo-label and the prompt prefix stay the match); on bags whose wrong pseudo-labels were
partly corrected, at random, until a given fraction of the kept videos is right (``--corrected_accuracies``: how good
must the matches be?); and on "oracle" bags in which every kept video's matched action (and with it the LLM phrases of
its bag) is replaced by its ground-truth action.
The gap between the first and the last is what the pseudo-label errors cost; the gap between the oracle run and the
base bounds what this recipe could gain on these videos. Also reports how the errors are structured: the matching
confusion matrix and, per true action, whether the most frequent pseudo-label is the right one (if it is for every
action, errors are a minority everywhere and a fit that follows the majority could correct them).

With ``--context_bias`` > 0 the world (and the base's pretraining stills) show each action in its typical scene that
often, and accuracy is also split into held-out clips in their action's typical scene and the others: the base's
confident matches are then mostly typical-scene clips, and the split shows whether fine-tuning on them taught the
motion marks (the atypical clips improve) or the scene shortcut (only the typical ones do).

    python toy_world/benchmarks/toy_label_noise.py --seed 0 --output_dir toy_claims_output/seed0
    python toy_world/benchmarks/toy_label_noise.py --seed 0 --context_bias 0.5 --output_dir toy_context_output/seed0

Reuses whatever `toy_world.demo` / `toy_world/benchmarks/toy_claims.py` built in `--output_dir` (world, bags, runs).
"""

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from transformers import AutoModel, AutoProcessor  # noqa: E402

from modeling_maxi.evaluation import load_custom_split  # noqa: E402
from modeling_maxi.evaluation.zero_shot_eval import predict_split  # noqa: E402
from toy_world.demo import (  # noqa: E402
    SINGLE_ACTION_WORLD,
    DemoArguments,
    build_text_bags,
    evaluate,
    fine_tune,
    generate_world,
    kept_bags,
    pretrain_base,
)
from toy_world.world import TOY_ACTION_CONTEXT, TOY_ACTION_DICTIONARY, load_world_specs  # noqa: E402

CLASS_LEVEL_COLUMNS = ("matched_label", "matched_text", "llm_phrases", "llm_verbs", "text_bag")


def _rewrite_bags(bags_dir: Path, output_dir: Path, rewrite) -> None:
    """Copy the published bags to `output_dir`, passing every configuration's rows through
    ``rewrite(rows, by_class)``, where ``by_class`` maps an action id to a kept row matched to it."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    shutil.copytree(bags_dir, output_dir, ignore=shutil.ignore_patterns("stages", "logs"))
    for parquet in sorted(output_dir.glob("*/*.parquet")):
        rows = pd.read_parquet(parquet)
        by_class = {int(row.matched_label): row for _, row in rows.iterrows()}
        missing = sorted(set(rows["label"]) - set(by_class))
        if missing:
            raise RuntimeError(
                f"No kept video was matched to action(s) {[TOY_ACTION_DICTIONARY[i] for i in missing]}; their bags "
                "cannot be borrowed. Use more videos or a larger filter ratio."
            )
        rewrite(rows, by_class)
        rows.to_parquet(parquet)


def write_oracle_bags(bags_dir: Path, oracle_dir: Path) -> None:
    """Copy the published bags, replacing each row's class-level columns by those of its ground-truth action."""

    def use_true_action(rows, by_class):
        for column in CLASS_LEVEL_COLUMNS:
            rows[column] = [by_class[int(label)][column] for label in rows["label"]]

    _rewrite_bags(bags_dir, oracle_dir, use_true_action)


def write_corrected_bags(bags_dir: Path, output_dir: Path, accuracy: float, seed: int = 0) -> None:
    """Copy the published bags, correcting the pseudo-labels (and class-level bag columns) of randomly chosen wrongly
    matched videos to their ground-truth action until a fraction `accuracy` of the kept videos is right."""

    def correct_some(rows, by_class):
        wrong = np.flatnonzero(rows["label"].to_numpy() != rows["matched_label"].to_numpy())
        needed = int(round(accuracy * len(rows))) - (len(rows) - len(wrong))
        if needed <= 0:
            return
        chosen = set(np.random.default_rng(seed).choice(wrong, size=needed, replace=False).tolist())
        for column in CLASS_LEVEL_COLUMNS:
            rows[column] = [
                by_class[int(label)][column] if index in chosen else value
                for index, (label, value) in enumerate(zip(rows["label"], rows[column]))
            ]

    _rewrite_bags(bags_dir, output_dir, correct_some)


def write_perfect_caption_bags(bags_dir: Path, output_dir: Path) -> None:
    """Copy the published bags, giving every video the caption verbs a perfect captioner would: the verbs of its
    ground-truth action (its LLM verbs), added to its bag. The pseudo-label and the prompt prefix stay the match."""

    def add_true_verbs(rows, by_class):
        verbs = [list(by_class[int(label)]["llm_verbs"]) for label in rows["label"]]
        rows["caption_verbs"] = verbs
        rows["text_bag"] = [list(dict.fromkeys([*bag, *extra])) for bag, extra in zip(rows["text_bag"], verbs)]

    _rewrite_bags(bags_dir, output_dir, add_true_verbs)


def error_structure(bags_dir: Path, args: DemoArguments) -> dict:
    """The pseudo-label errors of the clips the fine-tuning keeps (the demo's filter over the published bags)."""
    bags = kept_bags(bags_dir, args)
    num_classes = len(TOY_ACTION_DICTIONARY)
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    for truth, matched in zip(bags["label"], bags["matched_label"]):
        confusion[truth, matched] += 1
    plurality_correct = [int(confusion[c].argmax() == c) for c in range(num_classes) if confusion[c].sum()]
    return {
        "kept_videos": len(bags),
        "matching_accuracy": float(np.trace(confusion) / confusion.sum()),
        "actions_whose_plurality_pseudo_label_is_right": f"{sum(plurality_correct)}/{len(plurality_correct)}",
        "confusion": confusion.tolist(),
    }


@torch.no_grad()
def scene_split_accuracy(model_dir: Path, world: Path, num_frames: int) -> dict:
    """Top-1 (dictionary names) on the held-out clips shown in their action's typical scene and on the others."""
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    split = load_custom_split(world / "labels" / "actions.csv", world / "splits" / "test.txt", name="toy_world")
    predictions = predict_split(model, processor, split, world, num_frames=num_frames)
    specs = load_world_specs(world, "test")
    typical = np.array(
        [
            (specs[i][2].background, specs[i][2].color) == TOY_ACTION_CONTEXT[specs[i][2].action]
            for i in predictions.sample_indices.tolist()
        ]
    )
    correct = predictions.scores.argmax(1) == np.array([labels[0] for labels in predictions.labels])
    return {
        "typical_scene": {"clips": int(typical.sum()), "top1": 100 * float(correct[typical].mean())},
        "other_scenes": {"clips": int((~typical).sum()), "top1": 100 * float(correct[~typical].mean())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="toy_claims_output/seed0")
    parser.add_argument("--context_bias", type=float, default=0.0, help="World setting (see toy_world/demo.py).")
    parser.add_argument(
        "--corrected_accuracies",
        type=float,
        nargs="*",
        default=[0.8, 0.9],
        help="Also train on the bags with randomly chosen wrong pseudo-labels corrected to ground truth until this "
        "fraction of the kept videos is right (how good must the matches be?).",
    )
    options = parser.parse_args()
    for accuracy in options.corrected_accuracies:
        if not 0.0 < accuracy <= 1.0:
            parser.error(f"--corrected_accuracies must be in (0, 1], got {accuracy}.")
    args = DemoArguments(
        **SINGLE_ACTION_WORLD, output_dir=options.output_dir, seed=options.seed, context_bias=options.context_bias
    )
    dictionary_only = dataclasses.replace(args, text_sources=["dictionary"])
    world = generate_world(args)
    base_dir = pretrain_base(args, world)
    bags_dir, _ = build_text_bags(args, world, base_dir)
    oracle_dir = Path(args.output_dir) / "text_bags_oracle"
    write_oracle_bags(bags_dir, oracle_dir)
    captions_dir = Path(args.output_dir) / "text_bags_perfect_captions"
    write_perfect_caption_bags(bags_dir, captions_dir)
    runs = {
        "base (object-biased CLIP)": base_dir,
        "MAXI, pseudo-labels (the pipeline's bags)": fine_tune(
            args, world, base_dir, bags_dir, "mil_nce", "model_mil_nce"
        ),
        "same pseudo-labels, bare class prompt only": fine_tune(
            dictionary_only, world, base_dir, bags_dir, "mil_nce", "model_dictionary_only"
        ),
        "MAXI, pseudo-labels + the true action's verbs in every bag": fine_tune(
            args, world, base_dir, captions_dir, "mil_nce", "model_perfect_captions"
        ),
    }
    for accuracy in options.corrected_accuracies:
        corrected_dir = Path(args.output_dir) / f"text_bags_corrected_{accuracy:g}"
        write_corrected_bags(bags_dir, corrected_dir, accuracy)
        runs[f"MAXI, pseudo-labels corrected to {100 * accuracy:g}% right"] = fine_tune(
            args, world, base_dir, corrected_dir, "mil_nce", f"model_corrected_{accuracy:g}"
        )
    runs["MAXI, ground-truth labels on the same videos"] = fine_tune(
        args, world, base_dir, oracle_dir, "mil_nce", "model_oracle_labels"
    )
    results = {name: evaluate(path, world, args.num_frames) for name, path in runs.items()}
    if args.context_bias > 0:
        for name, path in runs.items():
            results[name].update(scene_split_accuracy(path, world, args.num_frames))
    structure = error_structure(bags_dir, args)
    header = "| model | top-1 (dictionary names) | top-5 | top-1 (held-out phrasings) |"
    if args.context_bias > 0:
        header += " top-1, typical scene | top-1, other scenes |"
    rows = [header, "|---" * header.count(" | ") + "|---|"]
    for name, metrics in results.items():
        names, held = metrics["dictionary names"], metrics["held-out phrasings"]
        row = f"| {name} | {names['top1']:.1f} | {names['top5']:.1f} | {held['top1']:.1f} |"
        if args.context_bias > 0:
            row += f" {metrics['typical_scene']['top1']:.1f} | {metrics['other_scenes']['top1']:.1f} |"
        rows.append(row)
    if args.context_bias > 0:
        typical, other = (
            results["base (object-biased CLIP)"]["typical_scene"],
            results["base (object-biased CLIP)"]["other_scenes"],
        )
        rows.append("")
        rows.append(f"Held-out clips in their action's typical scene: {typical['clips']}, others: {other['clips']}.")
    rows.append("")
    rows.append(
        f"Kept videos: {structure['kept_videos']}, pseudo-label accuracy {100 * structure['matching_accuracy']:.1f}%; "
        "actions whose most frequent pseudo-label is right: "
        f"{structure['actions_whose_plurality_pseudo_label_is_right']}."
    )
    rows.append("Confusion of the kept videos (rows: true action, columns: pseudo-label, dictionary order):")
    rows.append("")
    rows.extend("    " + " ".join(f"{count:4d}" for count in row) for row in structure["confusion"])
    table = "\n".join(rows)
    print(table)
    (Path(args.output_dir) / "toy_label_noise.json").write_text(json.dumps({**results, **structure}, indent=1))


if __name__ == "__main__":
    main()
