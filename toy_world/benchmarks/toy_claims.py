# SPDX-License-Identifier: Apache-2.0
"""Claim check on the toy world (issue: the offline main job): does unsupervised MIL-NCE fine-tuning on CLIP-matched,
language-expanded text bags improve zero-shot action recognition over the object-biased base model?

For each seed: generate the world, pretrain the base, build the text bags (all exactly as `toy_world.demo`), then
fine-tune with the five objectives of the paper's Table 7 on the same bags: cross-entropy over the dictionary's class
prompts (`cross_entropy`), NCE with one sampled text per video (`nce`), MIL-Max (`mil_max`), MIL-NCE with only the
video's own bag positive (`mil_nce_instance`) and MIL-NCE over the bag (`mil_nce`, Eq. 2). The bags hold the toy
captioner's caption verbs, as in the demo; top-1 on the novel actions (and, in the compound world, the demo's default,
on the novel pairs of known parts) is reported beside the dictionary's. Prints mean ± std over the seeds of held-out
zero-shot top-1/top-5 and writes a `## toy_claims` section into `benchmarks/RESULTS.md`. `--objectives` runs a subset;
world settings of `toy_world.demo` such as `--compound_actions false` (the world of ten single actions, with the
recipe its results were measured with, `toy_world.demo.SINGLE_ACTION_WORLD`),
`--min_action_visibility`, `--clear_pretraining_stills` and `--mark_caption_prob` pass through,
`--match_refinement_steps` / `--match_refinement_method` set the refinement of the matches before filtering
(`--match_refinement_steps 0` is the paper's matching), `--paper_matching` adds MIL-NCE on bags of the paper's
matching beside them (the demo's second row), and `--filter_score similarity` / `--filter_ratio` filter the
bags by the paper's confidence instead of the demo's margin (see `modeling_maxi/text_bags/filtering.py`).

    python toy_world/benchmarks/toy_claims.py --seeds 0 1 2 --paper_matching
    python toy_world/benchmarks/toy_claims.py --seeds 0 1 2 --objectives mil_nce --match_refinement_steps 0 --no_write
"""

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toy_world.demo import (  # noqa: E402
    NOVEL_PAIRS_SET,
    PER_WORLD_BASE_SEED,
    SINGLE_ACTION_WORLD,
    DemoArguments,
    add_demo_settings,
    build_text_bags,
    evaluate,
    fine_tune,
    generate_world,
    label_set_titles,
    matching_accuracy,
    prepare_captioner,
    pretrain_base,
)

OBJECTIVES = ("cross_entropy", "nce", "mil_max", "mil_nce_instance", "mil_nce")
DEMO_SETTINGS = (
    "compound_actions",
    "novel_pair_weight",
    "min_action_visibility",
    "filter_score",
    "filter_ratio",
    "mark_caption_prob",
    "match_refinement_steps",
    "match_refinement_method",
)
PAPER_MATCHING_ROW = "mil_nce_paper_matching"  # `--paper_matching`: MIL-NCE on bags of the paper's matching
RESULTS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"


def run_seed(
    base_args: DemoArguments, seed: int, objectives: tuple[str, ...] = OBJECTIVES, paper_matching: bool = False
) -> dict:
    args = replace(base_args, seed=seed, output_dir=str(Path(base_args.output_dir) / f"seed{seed}"))
    world = generate_world(args)
    base_dir = pretrain_base(args, world)
    bags_dir, _ = build_text_bags(args, world, base_dir, prepare_captioner(args, world))
    results = {"base": evaluate(base_dir, world, args.num_frames), "matching": matching_accuracy(bags_dir, args)}
    for objective in objectives:
        run_dir = fine_tune(args, world, base_dir, bags_dir, loss_variant=objective, run_name=f"model_{objective}")
        results[objective] = evaluate(run_dir, world, args.num_frames)
    if paper_matching:
        # The demo's second row: MIL-NCE on bags matched the paper's way (no refinement), reusing the matching stage.
        paper_args = replace(args, match_refinement_steps=0)
        paper_bags, _ = build_text_bags(
            paper_args, world, base_dir, prepare_captioner(args, world), "text_bags_paper_matching"
        )
        results["matching_paper"] = matching_accuracy(paper_bags, paper_args)
        run_dir = fine_tune(paper_args, world, base_dir, paper_bags, "mil_nce", "model_mil_nce_paper_matching")
        results[PAPER_MATCHING_ROW] = evaluate(run_dir, world, args.num_frames)
    return results


def mean_std(values: list[float]) -> str:
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def summarize(per_seed: dict[int, dict], objectives: tuple[str, ...] = OBJECTIVES) -> str:
    if all(PAPER_MATCHING_ROW in r for r in per_seed.values()):
        objectives = (*objectives, PAPER_MATCHING_ROW)
    novel_sets = ["novel actions"]
    if all(NOVEL_PAIRS_SET in r["base"] for r in per_seed.values()):
        novel_sets.append(NOVEL_PAIRS_SET)
    titles = label_set_titles(novel_sets)  # as the demo's table says
    rows = [
        "| model | top-1 (dictionary names) | top-5 | top-1 (held-out phrasings) | "
        + " | ".join(f"top-1 ({titles.get(label_set, label_set)})" for label_set in novel_sets)
        + " |",
        "|---|---|---|---" + "|---" * len(novel_sets) + "|",
    ]
    for name in ("base", *objectives):
        label = "base (object-biased CLIP)" if name == "base" else f"MAXI fine-tuned, `{name}`"
        if name == PAPER_MATCHING_ROW:
            label = "MAXI fine-tuned, `mil_nce`, paper's matching (no refinement)"
        columns = [
            [r[name]["dictionary names"]["top1"] for r in per_seed.values()],
            [r[name]["dictionary names"]["top5"] for r in per_seed.values()],
            *(
                [r[name][label_set]["top1"] for r in per_seed.values()]
                for label_set in ("held-out phrasings", *novel_sets)
            ),
        ]
        rows.append(f"| {label} | " + " | ".join(mean_std(values) for values in columns) + " |")
    matching = [100 * r["matching"]["matching_accuracy"] for r in per_seed.values()]
    rows.append("")
    for name in ("mil_nce", PAPER_MATCHING_ROW):
        if name not in objectives:
            continue
        for label_set in ("dictionary names", *novel_sets):
            gains = [r[name][label_set]["top1"] - r["base"][label_set]["top1"] for r in per_seed.values()]
            rows.append(
                f"`{name}` gain over the base, top-1 on the {titles.get(label_set, label_set)}: {mean_std(gains)} "
                "points (per seed: " + ", ".join(f"{g:+.1f}" for g in gains) + ")."
            )
    rows.append(f"CLIP matching accuracy of the kept videos: {mean_std(matching)}%.")
    if PAPER_MATCHING_ROW in objectives:
        paper = [100 * r["matching_paper"]["matching_accuracy"] for r in per_seed.values()]
        rows.append(f"With the paper's matching (no refinement): {mean_std(paper)}%.")
    return "\n".join(rows)


def write_results(section: str) -> None:
    text = RESULTS_FILE.read_text() if RESULTS_FILE.is_file() else "# Benchmark results\n"
    pattern = re.compile(r"\n## toy_claims\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub("", text).rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    RESULTS_FILE.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output_dir", default="toy_claims_output")
    parser.add_argument("--no_write", action="store_true", help="Do not update benchmarks/RESULTS.md.")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    add_demo_settings(parser, DEMO_SETTINGS)
    parser.add_argument(
        "--clear_pretraining_stills", action="store_true", help="World setting (see toy_world/demo.py)."
    )
    parser.add_argument(
        "--base_seed",
        type=int,
        default=None,
        help="Seed of the base model and captioner every world seed starts from; -1: each seed its own (see "
        "toy_world/demo.py). Default: the demo's (one shared base), or -1 with --compound_actions false.",
    )
    parser.add_argument(
        "--paper_matching",
        action="store_true",
        help="Also fine-tune MIL-NCE on bags of the paper's matching (no refinement), the demo's second row.",
    )
    options = parser.parse_args()
    settings = {name: getattr(options, name) for name in DEMO_SETTINGS}
    recipe = {} if options.compound_actions else SINGLE_ACTION_WORLD  # the single world as its results were measured
    base_seed = {} if options.base_seed is None else {"base_seed": options.base_seed}  # else the recipe's
    base_args = DemoArguments(
        output_dir=options.output_dir,
        clear_pretraining_stills=options.clear_pretraining_stills,
        **{**recipe, **settings, **base_seed},
    )
    objectives = tuple(options.objectives)
    started = time.perf_counter()
    per_seed = {}
    for seed in options.seeds:  # each seed's results are written as soon as they exist
        per_seed[seed] = run_seed(base_args, seed, objectives, options.paper_matching)
        (Path(options.output_dir) / "toy_claims.json").write_text(json.dumps(per_seed, indent=1))
    minutes = (time.perf_counter() - started) / 60
    table = summarize(per_seed, objectives)
    print(table)
    if not options.no_write:
        command = "python toy_world/benchmarks/toy_claims.py --seeds " + " ".join(map(str, options.seeds))
        if objectives != OBJECTIVES:
            command += " --objectives " + " ".join(objectives)
        command += "".join(
            f" --{name} {str(value).lower() if isinstance(value, bool) else value}"
            for name, value in settings.items()
            if value != getattr(DemoArguments, name)
        )
        if options.base_seed is not None:
            command += f" --base_seed {options.base_seed}"
        if options.clear_pretraining_stills:
            command += " --clear_pretraining_stills"
        if options.paper_matching:
            command += " --paper_matching"
        write_results(
            "## toy_claims\n\n"
            f"Command: `{command}` ({minutes:.0f} min on this machine's 2 CPU cores; demo defaults: "
            f"{base_args.num_train_videos} unlabeled / {base_args.num_test_videos} held-out clips, "
            f"{'the compound world' if base_args.compound_actions else 'the world of 10 single actions'}, "
            f"p = {base_args.filter_ratio} by {base_args.filter_score}, {base_args.train_steps} fine-tuning steps, "
            + (
                "a base model per seed). "
                if base_args.base_seed == PER_WORLD_BASE_SEED
                else f"every seed from base model {base_args.base_seed}). "
            )
            + "Held-out zero-shot accuracy in %, mean ± std over seeds:\n\n"
            + table
        )


if __name__ == "__main__":
    main()
