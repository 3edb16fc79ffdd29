# SPDX-License-Identifier: Apache-2.0
"""Tests of modeling_maxi.loss against straightforward per-element reference computations."""

import math
import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modeling_maxi.loss import (
    CONTRAST_SCOPES,
    LOSS_VARIANTS,
    TEXT_BAG_LOSSES,
    class_prompt_cross_entropy,
    distributed_text_bag_loss,
    gather_features,
    mil_max_loss,
    mil_nce_instance_loss,
    mil_nce_loss,
    mil_nce_per_pair_loss,
    nce_loss,
    text_bag_loss,
)

LABELS = torch.tensor([3, 1, 3, 0, 1, 3])  # repeated pseudo labels on purpose


def _inputs(seed=0, batch=6, bag=4, dim=8):
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    text = torch.randn(batch, bag, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    return video, text


def _sim(video, text, i, j, n, scale):
    return scale * torch.dot(video[i] / video[i].norm(), text[j, n] / text[j, n].norm())


def reference(video, text, labels, scale, variant):
    """Loops over every element, exactly as the formulas are written down."""
    batch, bag, _ = text.shape
    if variant == "nce":
        text, bag = text[:, :1], 1
    terms = []
    for i in range(batch):
        all_terms = [torch.exp(_sim(video, text, i, k, n, scale)) for k in range(batch) for n in range(bag)]
        denominator = sum(all_terms)
        if variant in ("mil_nce", "nce", "mil_nce_instance"):
            if variant == "mil_nce_instance":
                positives = [i]
            else:
                positives = [j for j in range(batch) if labels[j] == labels[i]]
            numerator = sum(torch.exp(_sim(video, text, i, j, n, scale)) for j in positives for n in range(bag))
            terms.append(-torch.log(numerator / denominator))
        elif variant == "mil_nce_per_pair":
            for j in range(batch):
                if labels[j] == labels[i]:
                    bag_prob = sum(torch.exp(_sim(video, text, i, j, n, scale)) for n in range(bag)) / denominator
                    terms.append(-torch.log(bag_prob))
        elif variant == "mil_max":
            bag_logit = [max(_sim(video, text, i, j, n, scale) for n in range(bag)) for j in range(batch)]
            numerator = sum(torch.exp(bag_logit[j]) for j in range(batch) if labels[j] == labels[i])
            terms.append(-torch.log(numerator / sum(torch.exp(x) for x in bag_logit)))
    return sum(terms) / len(terms)


BAG_OBJECTIVES = {
    "mil_nce": mil_nce_loss,
    "mil_nce_instance": mil_nce_instance_loss,
    "mil_nce_per_pair": mil_nce_per_pair_loss,
    "mil_max": mil_max_loss,
    "nce": nce_loss,
}


def test_registry_maps_every_variant_to_its_named_objective():
    assert LOSS_VARIANTS == ("mil_nce", "mil_nce_instance", "mil_nce_per_pair", "mil_max", "nce", "cross_entropy")
    assert tuple(TEXT_BAG_LOSSES) == LOSS_VARIANTS
    for variant, objective in BAG_OBJECTIVES.items():
        assert TEXT_BAG_LOSSES[variant] is objective


@pytest.mark.parametrize("variant", list(BAG_OBJECTIVES))
def test_variants_match_reference_loss_and_gradients(variant):
    video, text = _inputs()
    scale = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    loss = BAG_OBJECTIVES[variant](video, text, LABELS, scale)
    torch.testing.assert_close(text_bag_loss(video, text, LABELS, scale, variant=variant), loss, rtol=0, atol=0)
    grads = torch.autograd.grad(loss, (video, text, scale))
    expected = reference(video, text, LABELS, scale, variant)
    expected_grads = torch.autograd.grad(expected, (video, text, scale))
    torch.testing.assert_close(loss, expected.to(loss.dtype), rtol=1e-6, atol=1e-6)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got.to(torch.float64), want, rtol=1e-5, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in grads)


def test_variants_differ_when_labels_repeat():
    video, text = _inputs(seed=1)
    values = {v: text_bag_loss(video, text, LABELS, 5.0, variant=v).item() for v in LOSS_VARIANTS[:5]}
    assert len({round(v, 6) for v in values.values()}) == 5, values
    # With all-distinct labels, pseudo-label positives reduce to the instance-level loss.
    distinct = torch.arange(6)
    a = mil_nce_loss(video, text, distinct, 5.0)
    b = mil_nce_instance_loss(video, text, distinct, 5.0)
    torch.testing.assert_close(a, b)


def test_bag_size_one_equals_nce():
    video, text = _inputs(seed=2)
    torch.testing.assert_close(mil_nce_loss(video, text[:, :1], LABELS, 50.0), nce_loss(video, text, LABELS, 50.0))


def test_numerically_stable_and_scale_invariant_inputs():
    video, text = _inputs(seed=3)
    # Large temperature scale would overflow a naive exp; inputs are normalised inside.
    big = mil_nce_loss(video.float() * 1e4, text.float() * 1e-3, LABELS, 1000.0)
    assert torch.isfinite(big)
    torch.testing.assert_close(
        mil_nce_loss(video * 3.0, text * 0.5, LABELS, 10.0), mil_nce_loss(video, text, LABELS, 10.0)
    )
    half = mil_nce_loss(video.bfloat16(), text.bfloat16(), LABELS, torch.tensor(50.0, dtype=torch.bfloat16))
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_cross_entropy_over_class_prompts():
    video, _ = _inputs(seed=4)
    gen = torch.Generator().manual_seed(0)
    classes = torch.randn(5, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    loss = class_prompt_cross_entropy(video, classes, LABELS[:6] % 5, 20.0)
    manual = 0
    for i in range(6):
        logits = torch.stack([_sim(video, classes[None], i, 0, c, 20.0) for c in range(5)])
        manual = manual - torch.log_softmax(logits, 0)[int(LABELS[i] % 5)]
    torch.testing.assert_close(loss, manual / 6)
    _, text = _inputs(seed=4)
    via_variant = text_bag_loss(video, text, LABELS % 5, 20.0, variant="cross_entropy", class_embeds=classes)
    torch.testing.assert_close(via_variant, loss)
    with pytest.raises(ValueError, match="class_embeds"):
        text_bag_loss(video, text, LABELS, 20.0, variant="cross_entropy")
    with pytest.raises(ValueError, match=r"\[0, 5\), got values in \[3, 6\]"):
        class_prompt_cross_entropy(video, classes, LABELS + 3, 20.0)


def test_row_offset_selects_query_rows():
    video, text = _inputs(seed=5)
    rows = text_bag_loss(video[2:5], text, LABELS, 9.0, variant="mil_nce_instance", row_offset=2)
    full_terms = [mil_nce_instance_loss(video[i : i + 1], text, LABELS, 9.0, row_offset=i) for i in range(6)]
    torch.testing.assert_close(rows, sum(full_terms[2:5]) / 3)
    torch.testing.assert_close(sum(full_terms) / 6, mil_nce_instance_loss(video, text, LABELS, 9.0))


@pytest.mark.parametrize("variant", LOSS_VARIANTS)
def test_reductions_give_the_terms_their_sum_and_their_mean(variant):
    video, text = _inputs(seed=6)
    classes = torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = LABELS % 5

    def loss(reduction):
        return text_bag_loss(video, text, labels, 4.0, variant, class_embeds=classes, reduction=reduction)

    terms = loss("none")
    # One term per video; the authors' formulation has one per positive (video, bag) pair.
    positive_pairs = int((labels[:, None] == labels[None, :]).sum())
    assert terms.shape == ((positive_pairs,) if variant == "mil_nce_per_pair" else (6,))
    torch.testing.assert_close(loss("sum"), terms.sum())
    torch.testing.assert_close(loss("mean"), terms.mean())
    with pytest.raises(ValueError, match="Unknown reduction 'avg'"):
        loss("avg")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "mil-nce"}, "Unknown loss variant 'mil-nce'"),
        ({"pseudo_labels": torch.zeros(5, dtype=torch.long)}, "5 entries but there are 6 text bags"),
        ({"pseudo_labels": torch.zeros(6)}, "integer ids"),
        ({"logit_scale": -1.0}, "positive finite"),
        ({"text_embeds": torch.zeros(6, 8)}, r"\(B, N, D\)"),
        ({"video_embeds": torch.zeros(6, 5)}, "D=5"),
        ({"row_offset": 3}, "row_offset=3"),
    ],
)
def test_bad_arguments_fail_with_clear_message(kwargs, message):
    video, text = _inputs()
    args = {"video_embeds": video, "text_embeds": text, "pseudo_labels": LABELS, "logit_scale": 2.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        text_bag_loss(**args)


def test_single_process_gather_is_identity():
    video, text = _inputs()
    gathered = gather_features(video, text, LABELS)
    assert gathered.video_embeds is video and gathered.row_offset == 0 and gathered.local_size == 6
    expected = mil_nce_loss(video, text, LABELS, 3.0)
    torch.testing.assert_close(distributed_text_bag_loss(video, text, LABELS, 3.0), expected)
    torch.testing.assert_close(text_bag_loss(video, text, LABELS, 3.0), expected)


# ---------------------------------------------------------------------------------------------------------------
# Two processes (gloo): a DDP-wrapped encoder sees the global batch through the gather; loss and parameter
# gradients must equal one process training on the concatenated batch. Shards are uneven (4 + 2 videos).
# With contrast_scope="local" (the authors' released code) nothing is gathered: each process's loss is the loss of its
# own shard, and DDP's averaging gives the gradient of the mean of the two shard losses.
SPLITS = ((0, 4), (4, 6))
DIST_VARIANTS = ("mil_nce", "mil_nce_instance", "mil_nce_per_pair", "mil_max", "nce")


def _encoders(seed=0):
    torch.manual_seed(seed)
    return torch.nn.ModuleDict(
        {"video": torch.nn.Linear(8, 8, dtype=torch.float64), "text": torch.nn.Linear(8, 8, dtype=torch.float64)}
    )


class _Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = _encoders()
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(5.0), dtype=torch.float64))

    def forward(self, video, text):
        return self.enc["video"](video), self.enc["text"](text)


def _worker(rank, world_size, port, result_path):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        video, text = _inputs(seed=11)
        start, stop = SPLITS[rank]
        results = {}
        for scope in CONTRAST_SCOPES:
            for variant in DIST_VARIANTS:
                model = torch.nn.parallel.DistributedDataParallel(_Pair())
                v, t = model(video.detach()[start:stop], text.detach()[start:stop])
                scale = model.module.log_scale.exp()
                loss = distributed_text_bag_loss(v, t, LABELS[start:stop], scale, variant, contrast_scope=scope)
                loss.backward()
                mean_loss = loss.detach().clone()
                dist.all_reduce(mean_loss)
                results[scope, variant] = (
                    float(loss),
                    float(mean_loss) / world_size,
                    {name: p.grad.clone() for name, p in model.module.named_parameters()},
                )
        torch.save(results, f"{result_path}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results():
    """Per rank: `{(contrast_scope, variant): (this rank's loss, rank-mean loss, DDP-averaged gradients)}`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "result")
        mp.spawn(_worker, args=(2, _free_port(), path), nprocs=2, join=True)
        return [torch.load(f"{path}.{rank}") for rank in range(2)]


@pytest.mark.timeout(180)
def test_two_process_loss_and_gradients_equal_single_process(two_process_results):
    video, text = _inputs(seed=11)
    for variant in DIST_VARIANTS:
        single = _Pair()
        v, t = single(video.detach(), text.detach())
        loss = text_bag_loss(v, t, LABELS, single.log_scale.exp(), variant)
        loss.backward()
        for rank in range(2):
            _, dist_loss, dist_grads = two_process_results[rank]["global", variant]
            assert dist_loss == pytest.approx(loss.item(), rel=1e-10), variant
            for name, param in single.named_parameters():
                # DDP averaged the gradients across ranks, so every rank holds the single-process gradient.
                torch.testing.assert_close(
                    dist_grads[name], param.grad, rtol=1e-9, atol=1e-12, msg=f"{variant}: {name}"
                )


@pytest.mark.timeout(180)
def test_two_process_local_scope_is_each_process_loss_without_gather(two_process_results):
    """contrast_scope="local": rank r's loss is the float64 loop reference of shard r alone; the DDP gradient is the
    gradient of the mean of the two shard references; and it is not the global loss (fewer bags per video)."""
    video, text = _inputs(seed=11)
    for variant in DIST_VARIANTS:
        single = _Pair()
        v, t = single(video.detach(), text.detach())
        scale = single.log_scale.exp()
        shard_references = [
            reference(v[start:stop], t[start:stop], LABELS[start:stop], scale, variant) for start, stop in SPLITS
        ]
        mean_reference = sum(shard_references) / len(SPLITS)
        mean_reference.backward()
        global_reference = reference(v.detach(), t.detach(), LABELS, scale.detach(), variant)
        for rank in range(2):
            own_loss, mean_loss, grads = two_process_results[rank]["local", variant]
            assert own_loss == pytest.approx(shard_references[rank].item(), rel=1e-10), (variant, rank)
            assert mean_loss == pytest.approx(mean_reference.item(), rel=1e-10), variant
            for name, param in single.named_parameters():
                torch.testing.assert_close(grads[name], param.grad, rtol=1e-9, atol=1e-12, msg=f"{variant}: {name}")
            global_grads = two_process_results[rank]["global", variant][2]
            assert any(not torch.allclose(grads[n], global_grads[n], rtol=1e-3) for n in grads), variant
        assert abs(mean_reference.item() - global_reference.item()) > 1e-3, variant
        assert two_process_results[0]["global", variant][1] == pytest.approx(global_reference.item(), rel=1e-10)


def test_contrast_scope_is_checked_and_equal_on_one_process():
    video, text = _inputs(seed=12)
    expected = mil_nce_loss(video, text, LABELS, 3.0)
    for scope in CONTRAST_SCOPES:
        torch.testing.assert_close(distributed_text_bag_loss(video, text, LABELS, 3.0, contrast_scope=scope), expected)
    with pytest.raises(ValueError, match="Unknown contrast_scope 'per_device'; expected one of global, local"):
        distributed_text_bag_loss(video, text, LABELS, 3.0, contrast_scope="per_device")
