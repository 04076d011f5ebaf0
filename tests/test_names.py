"""Names from a spec become Python names and module attributes. Whatever name `validate`
accepts, `build` turns into a module that imports, constructs and runs; a name that would break
the module (a method of nn.Module, an attribute the generated code sets) is refused with a code
and a location."""

from __future__ import annotations

import builtins
import keyword
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnngraph
from cnngraph.reserved import GENERATED_ATTRIBUTES, TORCH_ATTRIBUTES

TORCH_NAMES = {n for n in set(dir(nn.Sequential())) | set(dir(nn.Module())) if n.isidentifier()}


def test_the_reserved_names_cover_torchs_module_attributes() -> None:
    """The list is data (validating needs no torch); torch's own dir() is the reference."""
    assert TORCH_NAMES <= TORCH_ATTRIBUTES


def _spec(layer: str, param: str, block_param: str) -> str:
    return f"""
cnngraph: 1
name: names
input: [3, 8, 8]
params: {{{param}: 4}}
blocks:
  unit:
    params: {{{block_param}: 2}}
    layers:
      {layer}: {{op: conv2d, out_channels: "${{{block_param} * in_channels}}", kernel_size: 1}}
      act: relu
layers:
  {layer}: {{op: conv2d, out_channels: ${param}, kernel_size: 1}}
  body: {{block: unit}}
"""


@pytest.mark.parametrize(
    "name", ["forward", "training", "eval", "__class__", "append", "out_channels", "_modules"]
)
def test_a_layer_named_like_a_module_attribute_is_refused(name: str) -> None:
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(_spec(name, "width", "expand"))
    first = info.value.diagnostics[0]
    assert first.code == "CG202"
    assert name in first.message and "rename" in (first.hint or "")
    assert first.location is not None and first.location.line > 0


@pytest.mark.parametrize("name", ["true", "false", "null"])
def test_yaml_words_are_not_param_names(name: str) -> None:
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(_spec("conv", name, "expand"))
    assert info.value.diagnostics[0].code == "CG307"


TRICKY = sorted(
    {
        *keyword.kwlist,
        *keyword.softkwlist,
        *(n for n in dir(builtins) if n.isidentifier()),
        *TORCH_NAMES,
        *GENERATED_ATTRIBUTES,
        "self",
        "nn",
        "torch",
        "math",
        "x",
        "out",
        "channels",
        "height",
        "width",
        "layer",
        "settings",
        "in_size",
        "make_divisible",
        "MODULES",
        "ACTIVATIONS",
        "StochasticDepth",
        "Any",
        "Sequence",
        "Callable",
        "identity",
        "i",
        "m",
        "block",
    }
)
names = st.one_of(
    st.sampled_from(TRICKY), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
)


def _runs(text: str) -> None:
    try:
        model = cnngraph.load(text)
    except cnngraph.SpecError as exc:
        assert all(d.code.startswith("CG") for d in exc.diagnostics)
        return
    module = model.to_module().eval()
    with torch.no_grad():
        out = module(torch.randn(1, *model.input_shape))
    assert tuple(out.shape[1:]) == model.output_shape
    assert sum(p.numel() for p in module.parameters()) == model.params


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(layer=names, param=names, block_param=names)
def test_whatever_validates_builds_and_runs(layer: str, param: str, block_param: str) -> None:
    _runs(_spec(layer, param, block_param))


@pytest.mark.parametrize("name", TRICKY)
def test_every_tricky_name_validates_and_runs_or_is_refused(name: str) -> None:
    spec: dict[str, Any] = {"layer": name, "param": name, "block_param": name}
    _runs(_spec(**spec))


def _spec_of_blocks(block: str, inp: str, copy: str, label: str) -> str:
    """The other places a name goes: a block's name, its second input, the copies a `names:`
    template makes, and an output label."""
    return f"""
cnngraph: 1
name: names
input: [3, 8, 8]
blocks:
  {block}:
    inputs: [input, {inp}]
    layers:
      - {{op: add, from: [input, {inp}]}}
      - {{op: conv2d, out_channels: 3, kernel_size: 1}}
layers:
  stem: {{op: conv2d, out_channels: 3, kernel_size: 1}}
  body: {{block: {block}, from: [stem, input], repeat: 2, names: "{copy}{{i}}"}}
  head: {{op: relu}}
outputs: {{{label}: head, other: body}}
"""


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(block=names, inp=names, copy=names, label=names)
def test_block_input_copy_and_output_names_build_and_run(
    block: str, inp: str, copy: str, label: str
) -> None:
    text = _spec_of_blocks(block, inp, copy, label)
    try:
        model = cnngraph.load(text)
    except cnngraph.SpecError as exc:
        assert all(d.code.startswith("CG") and d.location.line for d in exc.diagnostics)
        return
    module = model.to_module().eval()
    with torch.no_grad():
        out = module(torch.randn(1, *model.input_shape))
    assert tuple(out[0].shape[1:]) == model.outputs[label]


@pytest.mark.parametrize("label", ["_aux", "a b", "class", "2nd", "count"])
def test_output_labels_are_field_names(label: str) -> None:
    text = (
        "cnngraph: 1\nname: outs\ninput: [3, 8, 8]\nlayers:\n"
        "  a: {op: conv2d, out_channels: 4, kernel_size: 1}\n"
        "  b: {op: conv2d, out_channels: 2, kernel_size: 1}\n"
        f"outputs: {{'{label}': a, y: b}}\n"
    )
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text)
    first = info.value.diagnostics[0]
    assert first.code == "CG202" and first.location is not None


def test_outputs_named_like_tuple_methods_build() -> None:
    text = (
        "cnngraph: 1\nname: outs\ninput: [3, 8, 8]\nlayers:\n"
        "  a: {op: conv2d, out_channels: 4, kernel_size: 1}\n"
        "  b: {op: conv2d, out_channels: 2, kernel_size: 1}\n"
        "outputs: {max: a, self: b}\n"
    )
    model = cnngraph.load(text)
    with torch.no_grad():
        out = model.to_module().eval()(torch.randn(1, 3, 8, 8))
    assert tuple(out[0].shape[1:]) == (4, 8, 8) and tuple(out[1].shape[1:]) == (2, 8, 8)


def test_a_snapshot_returns_each_output_of_its_own_layer() -> None:
    """The fallback writer once reused one variable for a layer that is both an output and
    the next layer's input."""
    from cnngraph.backends.pytorch import load_source
    from cnngraph.backends.pytorch.snapshot import generate

    text = (
        "cnngraph: 1\nname: outs\ninput: [3, 8, 8]\nlayers:\n"
        "  a: {op: conv2d, out_channels: 4, kernel_size: 1}\n"
        "  b: {op: conv2d, out_channels: 2, kernel_size: 1}\n"
        "outputs: {x: a, y: b}\n"
    )
    model = cnngraph.load(text)
    module = load_source(generate(model, "outs.yaml", "a test"), "outs_snapshot").Outs()
    with torch.no_grad():
        x, y = module(torch.randn(1, 3, 8, 8))
    assert (tuple(x.shape[1:]), tuple(y.shape[1:])) == ((4, 8, 8), (2, 8, 8))
