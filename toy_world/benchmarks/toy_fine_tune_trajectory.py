# SPDX-License-Identifier: Apache-2.0
"""Diagnosis of the toy claim: how does fine-tuning move the model, checkpoint by checkpoint?

For one seed of the demo world (built, or reused, exactly as `toy_world.demo` does), fine-tunes the base model with the
demo's recipe but without weight-space ensembling, keeps a checkpoint every `--every` steps, and scores the base and
every checkpoint zero-shot with the bare class prompt (as the demo evaluates):

- on the held-out clips (top-1 against the ground truth);
- on the kept training clips the model was fine-tuned on: against their ground truth, and against their pseudo-label
  (the CLIP match the bags were built from). Agreement with the pseudo-labels is what the fine-tuning asks for; if it
  drops below the base's, the training objective and bare-prompt classification disagree.

Recipe settings of the demo pass through (`--learning_rate`, `--augmentations`, `--text_sources`, `--loss_variant`,
`--filter_score`, world settings), so runs that differ in one of them can be compared on the same world, base and bags.

    python toy_world/benchmarks/toy_fine_tune_trajectory.py --seed 1 --output_dir toy_claims_output/seed1
    python toy_world/benchmarks/toy_fine_tune_trajectory.py --seed 1 --output_dir toy_claims_output/seed1 \
        --augmentations none
"""

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modeling_maxi.evaluation import load_custom_split  # noqa: E402
from modeling_maxi.evaluation.zero_shot_eval import predict_split  # noqa: E402
from modeling_maxi.loss import LOSS_VARIANTS  # noqa: E402
from modeling_maxi.text_bags.filtering import FILTER_SCORES  # noqa: E402
from modeling_maxi.text_bags.publishing import load_text_bags  # noqa: E402
from toy_world.demo import (  # noqa: E402
    SINGLE_ACTION_WORLD,
    DemoArguments,
    build_text_bags,
    fine_tune,
    generate_world,
    pretrain_base,
)


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-<step>`` folder of a run, by step."""
    found = [(int(path.name.split("-")[-1]), path) for path in run_dir.glob("checkpoint-*") if path.is_dir()]
    return sorted(found)


def score(model_dir: Path, processor, test_split, kept_split, pseudo_labels: np.ndarray, world_dir: Path, frames: int):
    """Held-out top-1, and kept-clip agreement with ground truth and with the pseudo-labels, in %."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).eval()
    row = {}
    test = predict_split(model, processor, test_split, world_dir, num_frames=frames)
    test_truth = np.array([labels[0] for labels in test.labels])
    row["held-out top-1"] = 100 * float((test.scores.argmax(1) == test_truth).mean())
    kept = predict_split(model, processor, kept_split, world_dir, num_frames=frames)
    predicted = kept.scores.argmax(1)
    row["kept: truth"] = 100 * float((predicted == np.array([labels[0] for labels in kept.labels])).mean())
    row["kept: pseudo-label"] = 100 * float((predicted == pseudo_labels[kept.sample_indices]).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="toy_claims_output/seed0")
    parser.add_argument("--every", type=int, default=50, help="Steps between kept checkpoints.")
    defaults = DemoArguments(**SINGLE_ACTION_WORLD)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--augmentations", nargs="+", default=defaults.augmentations, help="'none' for none.")
    parser.add_argument("--text_sources", nargs="+", default=None, help="Default: the whole bag.")
    parser.add_argument("--loss_variant", choices=LOSS_VARIANTS, default=defaults.loss_variant)
    parser.add_argument("--min_action_visibility", type=float, default=defaults.min_action_visibility)
    parser.add_argument("--clear_pretraining_stills", action="store_true")
    parser.add_argument("--filter_score", choices=FILTER_SCORES, default=defaults.filter_score)
    options = parser.parse_args()
    if options.every < 1:
        parser.error(f"--every must be a positive number of steps, got {options.every}.")
    augmentations = [] if options.augmentations == ["none"] else options.augmentations
    args = DemoArguments(
        **SINGLE_ACTION_WORLD,
        output_dir=options.output_dir,
        seed=options.seed,
        learning_rate=options.learning_rate,
        augmentations=augmentations,
        text_sources=options.text_sources,
        loss_variant=options.loss_variant,
        min_action_visibility=options.min_action_visibility,
        clear_pretraining_stills=options.clear_pretraining_stills,
        filter_score=options.filter_score,
        ensemble_ratio=0.0,
    )
    world_dir = generate_world(args)
    base_dir = pretrain_base(args, world_dir)
    bags_dir, _ = build_text_bags(args, world_dir, base_dir)
    recipe_fields = ("learning_rate", "augmentations", "text_sources", "loss_variant", "filter_score")
    recipe = {k: asdict(args)[k] for k in recipe_fields}
    tag = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    run_dir = fine_tune(
        args, world_dir, base_dir, bags_dir, run_name=f"trajectory_{tag}", keep_checkpoints_every=options.every
    )

    from transformers import AutoProcessor

    bags = load_text_bags(bags_dir, "dictionary")
    kept_file = run_dir / "kept_train.txt"
    kept_file.write_text("".join(f"{path} {label}\n" for path, label in zip(bags["video_path"], bags["label"])))
    labels_csv = world_dir / "labels" / "actions.csv"
    test_split = load_custom_split(labels_csv, world_dir / "splits" / "test.txt", name="held-out")
    kept_split = load_custom_split(labels_csv, kept_file, name="kept")
    pseudo_labels = np.array(bags["matched_label"])
    processor = AutoProcessor.from_pretrained(base_dir)
    rows = {"base": score(base_dir, processor, test_split, kept_split, pseudo_labels, world_dir, args.num_frames)}
    for step, folder in checkpoint_dirs(run_dir):
        rows[f"step {step}"] = score(
            folder, processor, test_split, kept_split, pseudo_labels, world_dir, args.num_frames
        )
    columns = list(rows["base"])
    lines = [
        f"Recipe {json.dumps(recipe)}, seed {options.seed}, {len(bags)} kept clips "
        f"({100 * float((pseudo_labels == np.array(bags['label'])).mean()):.1f}% of pseudo-labels right):",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines += [f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |" for name, row in rows.items()]
    table = "\n".join(lines)
    print(table)
    (run_dir / "trajectory.json").write_text(json.dumps({"recipe": recipe, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
