# SPDX-License-Identifier: Apache-2.0
"""Weight-space ensembling (paper sec. 4.2): `modeling_maxi.ensembling.weight_space_ensemble`."""

import pytest
import torch
from transformers import CLIPModel

import modeling_maxi
from modeling_maxi import MaxiVideoCLIPModel
from modeling_maxi.ensembling import weight_space_ensemble
from tests.helpers.tiny_models import tiny_model


def _clip_twin(model: MaxiVideoCLIPModel) -> CLIPModel:
    clip = CLIPModel._from_config(model.config).eval()
    clip.load_state_dict(model.state_dict())
    return clip


def test_the_package_exports_the_ensembling_function():
    assert modeling_maxi.weight_space_ensemble is weight_space_ensemble


def test_weight_space_ensemble_arithmetic():
    base, finetuned = tiny_model(seed=1), tiny_model(seed=2)
    finetuned_before = {name: tensor.clone() for name, tensor in finetuned.state_dict().items()}
    mixed = weight_space_ensemble(base, finetuned, ratio=0.2)
    for name, tensor in mixed.state_dict().items():
        expected = finetuned.state_dict()[name]
        if tensor.is_floating_point():
            expected = 0.2 * base.state_dict()[name] + 0.8 * expected
        torch.testing.assert_close(tensor, expected, atol=1e-6, rtol=0, msg=name)
    assert type(mixed) is MaxiVideoCLIPModel and mixed is not finetuned
    for name, tensor in finetuned.state_dict().items():  # the inputs are left untouched
        assert torch.equal(tensor, finetuned_before[name]), name
    # ratio 0 and 1 are the end points
    torch.testing.assert_close(
        weight_space_ensemble(base, finetuned, 0.0).state_dict()["text_projection.weight"],
        finetuned.state_dict()["text_projection.weight"],
    )
    torch.testing.assert_close(
        weight_space_ensemble(base, finetuned, 1.0).state_dict()["text_projection.weight"],
        base.state_dict()["text_projection.weight"],
    )
    # a plain CLIPModel is a valid base (same tensors)
    weight_space_ensemble(_clip_twin(base), finetuned)


def test_weight_space_ensemble_refuses_mismatches():
    with pytest.raises(ValueError, match="architectures"):
        weight_space_ensemble(tiny_model(text_config={"num_hidden_layers": 1}), tiny_model())
    with pytest.raises(ValueError, match="shapes"):
        weight_space_ensemble(tiny_model(projection_dim=8), tiny_model())
    with pytest.raises(ValueError, match="ratio"):
        weight_space_ensemble(tiny_model(), tiny_model(), ratio=1.5)
