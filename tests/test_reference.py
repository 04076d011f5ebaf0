"""The specs against torchvision: the published figures (params, MACs), and, layer by layer,
the parameter counts under torchvision's own module names."""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnngraph

from .conftest import SPECS, assert_same_layout

TORCHVISION_SPECS = {
    "resnet18": "resnet18.yaml",
    "resnet50": "resnet.yaml",
    "googlenet": "googlenet.yaml",
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_SPECS))
def test_figures_equal_the_reference(name: str, reference: dict[str, dict[str, int]]) -> None:
    model = cnngraph.load(SPECS / TORCHVISION_SPECS[name])
    expected = reference[name]
    assert model.input_shape == (3, expected["input_hw"], expected["input_hw"])
    assert model.params == expected["params"]
    assert model.macs == expected["macs"]
    assert model.output_shape == (1000,)


def _torchvision(name: str, **kwargs: object) -> torch.nn.Module:
    # Without weights torchvision builds GoogLeNet with aux heads; the reference has none.
    extra = {"init_weights": False, "aux_logits": False} if name == "googlenet" else {}
    extra.update(kwargs)
    module: torch.nn.Module = getattr(torchvision.models, name)(weights=None, **extra)
    return module.eval()


@pytest.mark.parametrize("name", sorted(TORCHVISION_SPECS))
def test_layers_match_torchvision_modules(name: str) -> None:
    model = cnngraph.load(SPECS / TORCHVISION_SPECS[name])
    assert_same_layout(model, _torchvision(name))


@pytest.mark.parametrize("name", sorted(TORCHVISION_SPECS))
def test_output_shape_and_smallest_input_agree_with_torchvision(name: str) -> None:
    model = cnngraph.load(SPECS / TORCHVISION_SPECS[name])
    rules = model.input_size_rules
    assert rules is not None
    smallest = rules[0].minimum
    network = _torchvision(name)
    with torch.no_grad():
        out = network(torch.zeros(1, 3, smallest, smallest))
        assert tuple(out.shape[1:]) == model.output_shape
        if smallest > 1:
            with pytest.raises(RuntimeError):
                network(torch.zeros(1, 3, smallest - 1, smallest - 1))


def test_googlenet_aux_heads_switch_on() -> None:
    model = cnngraph.load(SPECS / "googlenet.yaml", params={"aux_logits": True})
    network = _torchvision("googlenet", aux_logits=True)
    assert model.params == sum(p.numel() for p in network.parameters())
    assert model.output_shape == {"logits": (1000,), "aux_logits2": (1000,), "aux_logits1": (1000,)}
    network.train()
    outputs = network(torch.zeros(2, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outputs] == list(model.outputs.values())
