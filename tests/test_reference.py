"""The spec library against figures nobody here wrote: torchvision's published params and MACs
(and, layer by layer, its parameters under its own module names), the papers' figures in the
reference README, and torch models written out by hand in independent.py."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import cnngraph

from .conftest import SPECS, assert_same_layout
from .independent import BUILDERS
from .library import ROWS, TORCHVISION_ROWS, Row


def independent_figures(row: Row, input_shape: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
    assert row.independent is not None
    module = BUILDERS[row.independent]().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.zeros(1, *input_shape))
    params = sum(p.numel() for p in module.parameters())
    return params, counter.get_total_flops() // 2, tuple(out.shape[1:])


def test_every_spec_has_a_row() -> None:
    assert {path.name for path in SPECS.glob("*.yaml")} == {row.spec for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_figures_equal_the_reference(row: Row, reference: dict[str, dict[str, int]]) -> None:
    model = row.load()
    if row.torchvision:
        expected = reference[row.torchvision]
        hw = expected["input_hw"]
        assert model.input_shape == (3, hw, hw)
        figures = (expected["params"], expected["macs"], row.output)
    elif row.paper:
        figures = (*row.paper, row.output)
    else:
        figures = independent_figures(row, model.input_shape)
    assert (model.params, model.macs, model.output_shape) == figures
    assert model.output_shape == row.output


@pytest.mark.parametrize("row", TORCHVISION_ROWS, ids=lambda row: row.id)
def test_layers_match_torchvision_modules(row: Row) -> None:
    assert_same_layout(row.load(), row.torchvision_model())


@pytest.mark.parametrize("row", TORCHVISION_ROWS, ids=lambda row: row.id)
def test_smallest_input_agrees_with_torchvision(row: Row) -> None:
    model = row.load()
    rules = model.input_size_rules
    assert rules is not None
    smallest = rules[0].minimum
    network = row.torchvision_model()
    with torch.no_grad():
        out = network(torch.zeros(1, 3, smallest, smallest))
        assert tuple(out.shape[1:]) == model.output_shape
        if smallest > 1:
            with pytest.raises(RuntimeError):
                network(torch.zeros(1, 3, smallest - 1, smallest - 1))


def test_googlenet_aux_heads_switch_on() -> None:
    model = cnngraph.load(SPECS / "googlenet.yaml", params={"aux_logits": True})
    network = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert model.params == sum(p.numel() for p in network.parameters())
    assert model.output_shape == {"logits": (1000,), "aux_logits2": (1000,), "aux_logits1": (1000,)}
    network.train()
    outputs = network(torch.zeros(2, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outputs] == list(model.outputs.values())
