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
from .library import ROWS, SAMPLED_TORCHVISION_ROWS, TORCHVISION_ROWS, Row


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


@pytest.mark.parametrize("row", SAMPLED_TORCHVISION_ROWS, ids=lambda row: row.id)
def test_smallest_input_agrees_with_torchvision(row: Row) -> None:
    model = row.load()
    rules = model.input_size_rules
    assert rules is not None
    smallest = rules[0].minimum
    network = row.torchvision_model()  # in eval mode, as the rules are for inference
    label = model.graph.eval_output
    with torch.no_grad():
        out = network(torch.zeros(1, 3, smallest, smallest))
        assert tuple(out.shape[1:]) == (model.outputs[label] if label else model.output_shape)
        if smallest > 1:
            with pytest.raises(RuntimeError):
                network(torch.zeros(1, 3, smallest - 1, smallest - 1))


def test_inception_v3_trains_from_its_training_sizes() -> None:
    """With the auxiliary head computed (training), the smallest input is larger."""
    model = cnngraph.load(SPECS / "inception_v3.yaml")
    rules = model.training_input_size_rules
    assert rules is not None and rules[0].minimum == 299
    network = torchvision.models.inception_v3(weights=None, init_weights=False).train()
    logits, aux = network(torch.zeros(2, 3, 299, 299))
    assert [tuple(logits.shape[1:]), tuple(aux.shape[1:])] == list(model.outputs.values())
    with pytest.raises(RuntimeError):
        network(torch.zeros(2, 3, 298, 298))


def test_googlenet_aux_heads_switch_on() -> None:
    model = cnngraph.load(SPECS / "googlenet.yaml", params={"aux_logits": True})
    network = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert model.params == sum(p.numel() for p in network.parameters())
    assert model.output_shape == {"logits": (1000,), "aux_logits2": (1000,), "aux_logits1": (1000,)}
    network.train()
    outputs = network(torch.zeros(2, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outputs] == list(model.outputs.values())


def test_the_regnet_rule_gives_torchvisions_stages() -> None:
    """Every regnet_* builder of torchvision (128GF too, which has no row): the stage widths,
    depths and group widths that BlockParams.from_init_params computes in float32."""
    import inspect
    import re

    from torchvision.models import regnet

    builders = re.findall(
        r"def (regnet_[xy]_\w+)\(.*?from_init_params\((.*?)\)\n", inspect.getsource(regnet), re.S
    )
    assert len(builders) == 15
    for name, arguments in builders:
        settings = dict(re.findall(r"(\w+)=([\d.]+)", arguments))
        given = {k: float(v) if "." in v else int(v) for k, v in settings.items()}
        expected = regnet.BlockParams.from_init_params(**given)
        model = cnngraph.load(SPECS / "anynet.yaml", params=given)
        stages = model.graph.params["stages"]
        assert [s[0] for s in stages] == expected.depths, name
        fitted = [model.layer(f"trunk_output.block{i}.block{i}-0.f.c.0") for i in range(1, 5)]
        assert [layer.shape[0] for layer in fitted] == expected.widths, name
        grouped = [model.layer(f"trunk_output.block{i}.block{i}-0.f.b.0") for i in range(1, 5)]
        groups = [layer.op.groups for layer in grouped]  # type: ignore[union-attr]
        widths = [layer.shape[0] for layer in grouped]
        assert [w // g for w, g in zip(widths, groups, strict=True)] == expected.group_widths
