# SPDX-License-Identifier: Apache-2.0
"""Diagnosis of the toy claim: does refining the matches without labels let MAXI's fine-tuning beat the base model?

For one seed of the demo world (world and filter settings of `toy_world.demo` pass through, e.g. `--mark_caption_prob`),
and for each `--refinement_steps` value, this script builds the text bags with the demo's pipeline and that many
transductive refinement steps of the classes (`--match_refinement_steps`, with the method of
`--match_refinement_method`, see `modeling_maxi/text_bags/refinement.py`; 0 is the paper's matching), fine-tunes the
base model on them with the demo's MIL-NCE recipe and evaluates zero-shot on the held-out clips with the bare class
prompt. It reports, per run, the kept clips, how many of their pseudo-labels are right and for how many actions the most
frequent pseudo-label is right (ground truth read for this report only). With `--oracle` it also fine-tunes on the
ground-truth actions of the clips kept at the first steps value: what the recipe could gain with perfect matches.

    python toy_world/benchmarks/toy_refined_matching.py --seed 1 --refinement_steps 0 10 --oracle \
        --output_dir toy_refined/seed1
    python toy_world/benchmarks/toy_refined_matching.py --seed 1 --refinement_steps 10 --match_refinement_method kmeans

Reuses whatever an earlier run (or `toy_world.demo` with the same settings) built in `--output_dir`.
"""

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from toy_label_noise import error_structure, write_oracle_bags  # noqa: E402

from toy_world.demo import (  # noqa: E402
    SINGLE_ACTION_WORLD,
    DemoArguments,
    add_demo_settings,
    build_text_bags,
    evaluate,
    fine_tune,
    generate_world,
    pretrain_base,
)

BASE = "base (object-biased CLIP)"
DEMO_SETTINGS = ("mark_caption_prob", "base_steps", "filter_score", "filter_ratio", "match_refinement_method")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="toy_refined/seed0")
    add_demo_settings(parser, DEMO_SETTINGS)
    parser.add_argument("--refinement_steps", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--oracle", action="store_true", help="Also fine-tune on the kept clips' true actions.")
    options = parser.parse_args()
    settings = {name: getattr(options, name) for name in DEMO_SETTINGS}
    args = DemoArguments(**SINGLE_ACTION_WORLD, output_dir=options.output_dir, seed=options.seed, **settings)
    world = generate_world(args)
    base_dir = pretrain_base(args, world)
    runs, kept = {BASE: base_dir}, {}
    for position, steps in enumerate(dict.fromkeys(options.refinement_steps)):
        run_args = dataclasses.replace(args, match_refinement_steps=steps)  # validates steps
        built, _ = build_text_bags(run_args, world, base_dir)
        label = f"{steps}_{args.match_refinement_method}" if steps else "0"
        bags_dir = Path(args.output_dir) / f"text_bags_refined_{label}"  # the next build reuses `built`
        if bags_dir.exists():
            shutil.rmtree(bags_dir)
        shutil.copytree(built, bags_dir, ignore=shutil.ignore_patterns("stages", "logs"))
        name = f"MAXI, {steps} {args.match_refinement_method} refinement steps" if steps else "MAXI, paper's matches"
        runs[name] = fine_tune(run_args, world, base_dir, bags_dir, "mil_nce", f"model_refined_{label}")
        kept[name] = error_structure(bags_dir, run_args)
        if position == 0 and options.oracle:
            oracle_dir = Path(args.output_dir) / f"text_bags_refined_{label}_oracle"
            write_oracle_bags(bags_dir, oracle_dir)
            name = f"MAXI, ground-truth actions of the clips kept at {steps} steps"
            runs[name] = fine_tune(run_args, world, base_dir, oracle_dir, "mil_nce", f"model_refined_{label}_oracle")
    results = {name: evaluate(path, world, args.num_frames) for name, path in runs.items()}
    lines = [
        "| model | kept clips | kept pseudo-labels right | actions with plurality right | top-1 | top-5 | "
        "top-1 (held-out phrasings) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, metrics in results.items():
        names, held = metrics["dictionary names"], metrics["held-out phrasings"]
        stats = kept.get(name)
        matching = (
            f"{stats['kept_videos']} | {100 * stats['matching_accuracy']:.1f}% | "
            f"{stats['actions_whose_plurality_pseudo_label_is_right']}"
            if stats
            else "- | - | -"
        )
        lines.append(f"| {name} | {matching} | {names['top1']:.1f} | {names['top5']:.1f} | {held['top1']:.1f} |")
    table = "\n".join(lines)
    print(table)
    record = {"options": vars(options), "results": results, "kept": kept, "table": table}
    (Path(args.output_dir) / "toy_refined_matching.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
