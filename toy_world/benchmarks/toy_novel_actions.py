# SPDX-License-Identifier: Apache-2.0
"""Diagnosis of the novel actions (issue: the main job shows the paper's claim): why does MAXI not gain on them?

The novel actions (orbiting, waving, leaking) are never named by the dictionary; training clips show them beside their
dictionary action, unlabelled, and the only way their names reach the fine-tuning is the toy captioner's verbs in the
bags, as BLIP's "waving" reaches MAXI's K400 bags. For one seed this fine-tunes the base with the demo's recipe on:

- the pipeline's bags (the demo's refined MAXI; reused from `toy_claims.py` as `model_mil_nce`);
- the same bags with the caption verbs as the only bag texts (``--text_sources dictionary captions``), so that every
  prompt of a clip with caption verbs carries one;
- bags whose novel-action verbs are the truth: each clip holds the verbs of the novel action it shows and no other
  (what a perfect captioner would give; dictionary matches and LLM phrases unchanged), with the whole bag and with the
  caption verbs only.

Each model is scored on the held-out sets of the demo and, on the novel-action clips, with the training prompt's own
form: "a photo of a {the clip's true dictionary action}. {novel phrase}" over the three novel phrases (can the model
tell the novel actions apart in the form it was trained on, given the right prefix?); a linear probe of its video
embeddings says how well the vision tower holds the novel actions, and the mean cosine of the three evaluation prompts
"a photo of a {novel action}." how well the text tower still tells their names apart. The pipeline's model is also
scored at other weight-space ensembling ratios with the base (the exported model holds ``r * base + (1 - r) * tuned``
at the demo's r; the tuned weights are recovered from it exactly, up to float rounding). The caption verbs' precision
and recall per novel action on the kept training clips are printed too.

    python toy_world/benchmarks/toy_claims.py --seeds 0 --objectives mil_nce --output_dir toy_claims_output
    python toy_world/benchmarks/toy_novel_actions.py --seed 0 --output_dir toy_claims_output/seed0
"""

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from transformers import AutoModel, AutoProcessor  # noqa: E402

from modeling_maxi.text_bags.captioning import caption_verbs_batch  # noqa: E402
from modeling_maxi.video_io import read_video_frames  # noqa: E402
from toy_world.captioner import describe_still  # noqa: E402
from toy_world.demo import (  # noqa: E402
    SINGLE_ACTION_WORLD,
    DemoArguments,
    build_text_bags,
    evaluate,
    fine_tune,
    generate_world,
    kept_bags,
    prepare_captioner,
    pretrain_base,
)
from toy_world.world import TOY_NOVEL_ACTIONS, load_world_specs  # noqa: E402

ENSEMBLE_RATIOS = (0.0, 0.2, 0.4, 0.6, 0.8)
PROMPT_PHRASES = {"orbiting": "orbiting", "waving": "waving flag", "leaking": "leaking oil"}


def true_novel_verbs() -> dict[str, list[str]]:
    """The caption verbs (the pipeline's spaCy parsing) of a correct caption of each novel action."""
    captions = [
        [describe_still({"color": "red", "shape": "circle", "background": "sand", "novel_action": action})]
        for action in TOY_NOVEL_ACTIONS
    ]
    verbs = caption_verbs_batch({"captions": captions})["caption_verbs"]
    return dict(zip(TOY_NOVEL_ACTIONS, verbs))


def write_true_novel_verb_bags(bags_dir: Path, output_dir: Path, world: Path) -> None:
    """Copy the published bags; in every row, the novel-action verbs become those of the novel action the clip shows
    (none if it shows none). Every other bag text stays."""
    verbs = true_novel_verbs()
    every_novel_verb = {verb for action_verbs in verbs.values() for verb in action_verbs}
    shown = {path: spec.novel_action for path, _, spec in load_world_specs(world, "train")}
    if output_dir.exists():
        shutil.rmtree(output_dir)
    shutil.copytree(bags_dir, output_dir, ignore=shutil.ignore_patterns("stages", "logs"))
    for parquet in sorted(output_dir.glob("*/*.parquet")):
        rows = pd.read_parquet(parquet)
        truth = [verbs.get(shown[path], []) for path in rows["video_path"]]
        rows["caption_verbs"] = [
            [v for v in (found if found is not None else []) if v not in every_novel_verb] + true
            for found, true in zip(rows["caption_verbs"], truth)
        ]
        if "text_bag" in rows and "captions" in parquet.parent.name:
            rows["text_bag"] = [
                [t for t in bag if t not in every_novel_verb] + true for bag, true in zip(rows["text_bag"], truth)
            ]
        rows.to_parquet(parquet)


def caption_verb_quality(bags_dir: Path, args: DemoArguments, world: Path) -> dict:
    """Per novel action, on the kept training clips: precision and recall of its verbs in the caption verbs."""
    verbs = true_novel_verbs()
    shown = {path: spec.novel_action for path, _, spec in load_world_specs(world, "train")}
    bags = kept_bags(bags_dir, args)
    quality = {}
    for action in TOY_NOVEL_ACTIONS:
        marker = verbs[action][0]
        has = [marker in (found or []) for found in bags["caption_verbs"]]
        shows = [shown[path] == action for path in bags["video_path"]]
        hits = sum(h and s for h, s in zip(has, shows))
        quality[action] = {
            "clips_showing_it": sum(shows),
            "clips_with_its_verbs": sum(has),
            "precision": hits / max(sum(has), 1),
            "recall": hits / max(sum(shows), 1),
        }
    return quality


def _embeds(output) -> torch.Tensor:
    return torch.nn.functional.normalize(output if torch.is_tensor(output) else output.pooler_output, dim=-1)


@torch.no_grad()
def name_prompt_cosines(model, processor, names: list[str]) -> torch.Tensor:
    """The (len(names), len(names)) cosines of the evaluation prompts ``"a photo of a {name}."`` of `names`."""
    prompts = [f"a photo of a {name}." for name in names]
    embeds = _embeds(model.get_text_features(**processor(text=prompts, return_tensors="pt", padding=True)))
    return embeds @ embeds.T


def mean_pairwise(cosines: torch.Tensor) -> float:
    """Mean of the cosines above the diagonal (every pair once)."""
    pairs = torch.triu_indices(len(cosines), len(cosines), offset=1)
    return float(cosines[pairs[0], pairs[1]].mean())


@torch.no_grad()
def novel_clip_measures(model_dir: Path, world: Path, num_frames: int) -> dict[str, float]:
    """On the held-out novel-action clips:

    - ``novel, training-prompt form``: top-1 over the novel phrases in the training prompt's form, with the clip's
      true dictionary action as prefix;
    - ``novel, linear probe``: 5-fold cross-validated accuracy of a logistic regression from the video embeddings to
      the novel action (how well the vision tower holds them, whatever the text tower says);
    - ``novel prompts, mean cosine``: mean pairwise cosine of the three evaluation prompts ``"a photo of a {name}."``
      (1.0: the text tower no longer tells the names apart).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    specs = load_world_specs(world, "test_novel")
    videos = torch.cat(
        [
            _embeds(
                model.get_video_features(
                    **processor(videos=[read_video_frames(str(world / path), num_frames)], return_tensors="pt")
                )
            )
            for path, _, _ in specs
        ]
    )
    labels = [label for _, label, _ in specs]
    correct = 0
    for video, (_, label, spec) in zip(videos, specs):
        prompts = [f"a photo of a {spec.action}. {PROMPT_PHRASES[action]}" for action in TOY_NOVEL_ACTIONS]
        texts = _embeds(model.get_text_features(**processor(text=prompts, return_tensors="pt", padding=True)))
        correct += int((texts @ video).argmax() == label)
    probe = LogisticRegression(max_iter=2000, C=10.0)
    return {
        "novel, training-prompt form": 100 * correct / len(specs),
        "novel, linear probe": 100 * float(cross_val_score(probe, videos.numpy(), labels, cv=5).mean()),
        "novel prompts, mean cosine": mean_pairwise(name_prompt_cosines(model, processor, list(TOY_NOVEL_ACTIONS))),
    }


@torch.no_grad()
def ensemble_sweep(model_dir: Path, base_dir: Path, trained_ratio: float, world: Path, num_frames: int) -> dict:
    """Held-out top-1 of the fine-tuned model re-ensembled with the base (`modeling_maxi.weight_space_ensemble`) at
    each of `ENSEMBLE_RATIOS`. The exported model holds the ensemble at `trained_ratio`; the tuned weights are
    recovered from it by inverting that mix."""
    from modeling_maxi import weight_space_ensemble

    exported = AutoModel.from_pretrained(model_dir)
    base = type(exported).from_pretrained(base_dir)
    base_state = base.state_dict()
    tuned = {
        name: (tensor - trained_ratio * base_state[name]) / (1 - trained_ratio)
        if tensor.is_floating_point()
        else tensor
        for name, tensor in exported.state_dict().items()
    }
    exported.load_state_dict(tuned)
    sweep = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*", "model.safetensors"))
        for ratio in ENSEMBLE_RATIOS:
            weight_space_ensemble(base, exported, ratio).save_pretrained(folder)
            sweep[f"{ratio:g}"] = {name: value["top1"] for name, value in evaluate(folder, world, num_frames).items()}
    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="toy_claims_output/seed0")
    options = parser.parse_args()
    args = DemoArguments(**SINGLE_ACTION_WORLD, output_dir=options.output_dir, seed=options.seed)
    captions_only = dataclasses.replace(args, text_sources=["dictionary", "captions"])
    world = generate_world(args)
    base_dir = pretrain_base(args, world)
    bags_dir, _ = build_text_bags(args, world, base_dir, prepare_captioner(args, world))
    true_dir = Path(args.output_dir) / "text_bags_true_novel_verbs"
    write_true_novel_verb_bags(bags_dir, true_dir, world)
    runs = {
        "base (object-biased CLIP)": base_dir,
        "MAXI, the pipeline's bags": fine_tune(args, world, base_dir, bags_dir, "mil_nce", "model_mil_nce"),
        "caption verbs as the only bag texts": fine_tune(
            captions_only, world, base_dir, bags_dir, "mil_nce", "model_captions_only"
        ),
        "true novel verbs": fine_tune(args, world, base_dir, true_dir, "mil_nce", "model_true_novel_verbs"),
        "true novel verbs as the only bag texts": fine_tune(
            captions_only, world, base_dir, true_dir, "mil_nce", "model_true_novel_verbs_captions_only"
        ),
    }
    results = {"caption_verb_quality": caption_verb_quality(bags_dir, args, world), "runs": {}}
    rows = [
        "| model | dictionary names | held-out phrasings | novel actions | novel, training-prompt form "
        "| novel, linear probe | novel prompts, mean cosine |",
        "|---|---|---|---|---|---|---|",
    ]
    for title, run_dir in runs.items():
        scores = {name: value["top1"] for name, value in evaluate(run_dir, world, args.num_frames).items()}
        scores.update(novel_clip_measures(run_dir, world, args.num_frames))
        results["runs"][title] = scores
        cells = [f"{value:.3f}" if "cosine" in name else f"{value:.1f}" for name, value in scores.items()]
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    results["ensemble_sweep"] = ensemble_sweep(
        runs["MAXI, the pipeline's bags"], base_dir, args.ensemble_ratio, world, args.num_frames
    )
    rows += ["", "| base weight r of the ensemble | dictionary names | held-out phrasings | novel actions |"]
    rows.append("|---|---|---|---|")
    for ratio, scores in results["ensemble_sweep"].items():
        rows.append(f"| {ratio} | " + " | ".join(f"{value:.1f}" for value in scores.values()) + " |")
    rows += ["", "| novel action | kept clips showing it | with its caption verbs | precision | recall |"]
    rows.append("|---|---|---|---|---|")
    for action, quality in results["caption_verb_quality"].items():
        rows.append(
            f"| {action} | {quality['clips_showing_it']} | {quality['clips_with_its_verbs']} | "
            f"{quality['precision']:.2f} | {quality['recall']:.2f} |"
        )
    print("\n".join(rows))
    (Path(args.output_dir) / "toy_novel_actions.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
