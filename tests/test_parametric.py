"""The generated file is a family, not a snapshot: built once from a spec at its defaults and
instantiated with other params, it must be what the compiler compiles for those params. The
compiler is the reference: parameter count, `state_dict` keys in order, output shape."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnngraph
from cnngraph.backends.pytorch import parametric
from cnngraph.backends.pytorch.runtime import camel
from cnngraph.backends.pytorch.snapshot import generate as snapshot
from cnngraph.backends.pytorch.writer import python_name
from cnngraph.errors import SpecError

from .conftest import SPECS
from .library import ROWS, SAMPLED_TORCHVISION_ROWS, Row

ALL_SPECS = sorted(SPECS.glob("*.yaml"))


@functools.cache
def model_class(spec: str) -> Any:
    """The model class of the file `cnngraph build` writes for `spec` at its defaults."""
    model = cnngraph.load(SPECS / spec)
    return _exec(model.torch_source(), model.name)


def _exec(source: str, model_name: str) -> Any:
    namespace: dict[str, Any] = {"__name__": f"built_{model_name}"}
    exec(compile(source, f"<built {model_name}>", "exec"), namespace)
    return namespace[camel(model_name)]


def constructor_args(params: dict[str, Any]) -> dict[str, Any]:
    """Spec params as the constructor's keyword arguments: Python names, tables as tuples."""

    def as_tuple(value: Any) -> Any:
        return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value

    return {python_name(name): as_tuple(value) for name, value in params.items()}


def instantiate(spec: str, params: dict[str, Any], device: str = "meta") -> torch.nn.Module:
    with torch.device(device):
        return model_class(spec)(**constructor_args(params)).eval()


def assert_same_as_compiled(spec: str, params: dict[str, Any]) -> None:
    """On the meta device: no memory, no arithmetic, only the structure and the shapes."""
    compiled = cnngraph.load(SPECS / spec, params=params)
    module = instantiate(spec, params)
    assert sum(p.numel() for p in module.parameters()) == compiled.params
    expected_keys = _compiled_state_keys(compiled)
    assert list(module.state_dict()) == expected_keys
    with torch.no_grad():
        out = module(torch.empty(1, *compiled.input_shape, device="meta"))
    output = out[0] if isinstance(out, tuple) else out
    label = compiled.graph.eval_output  # in eval mode, the one output it returns
    expected = compiled.outputs[label] if label else compiled.output_shape
    assert tuple(output.shape[1:]) == expected


def _compiled_state_keys(model: cnngraph.Model) -> list[str]:
    """The state_dict keys of the snapshot of `model`'s expansion: a module per compiled layer,
    written independently of the definitions."""
    snapshot_class = _exec(snapshot(model, model.graph.doc.file, "reference"), model.name)
    with torch.device("meta"):
        return list(snapshot_class().state_dict())


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_no_spec_falls_back_to_a_snapshot(path: Path) -> None:
    model = cnngraph.load(path)
    _, takes_params = parametric(model, path.name)
    assert takes_params


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_one_class_per_block_definition(path: Path) -> None:
    """Every class is a block definition's (named after it, `NinBlock` where the model has the
    name), the model's, its outputs' or the stochastic-depth helper: no `Bneck2` for a second
    shape of one definition."""
    model = cnngraph.load(path)
    source = model.torch_source()
    classes = [c.split("(")[0] for c in re.findall(r"^class (\w+\()", source, re.M)]
    definitions = model.graph.definitions
    assert definitions is not None
    allowed = {camel(name) + end for name in definitions.blocks for end in ("", "Block")}
    allowed |= {camel(model.name), camel(model.name) + "Outputs", "StochasticDepth"}
    assert len(classes) == len(set(classes))
    assert set(classes) <= allowed


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_file_at_defaults_builds_every_row(row: Row) -> None:
    assert_same_as_compiled(row.spec, row.params)


@pytest.mark.parametrize("row", SAMPLED_TORCHVISION_ROWS, ids=lambda row: row.id)
def test_file_at_defaults_loads_torchvision_weights(row: Row) -> None:
    module = instantiate(row.spec, row.params, device="cpu")
    reference = row.torchvision_model()
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, row.small_size(), row.small_size())
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))


def _compiles(spec: str, params: dict[str, Any]) -> bool:
    try:
        cnngraph.load(SPECS / spec, params=params)
    except SpecError:
        return False
    return True


_widths = st.sampled_from([0.25, 0.35, 0.5, 0.75, 1.0, 1.3])

FAMILIES: dict[str, Any] = {
    "resnet.yaml": st.fixed_dictionaries(
        {
            "block": st.sampled_from(["basic", "bottleneck"]),
            "layers": st.lists(st.integers(1, 3), min_size=4, max_size=4),
            "groups": st.sampled_from([1, 2, 4]),
            "width_per_group": st.sampled_from([8, 16, 64]),
            "num_classes": st.integers(1, 20),
        }
    ),
    "mobilenet_v2.yaml": st.fixed_dictionaries({"width_mult": _widths}),
    "mobilenet_v3.yaml": st.fixed_dictionaries(
        {"arch": st.sampled_from(["large", "small"]), "width_mult": _widths},
        optional={"last_channel": st.integers(8, 2048), "last_block": st.integers(8, 200)},
    ),
    "densenet.yaml": st.fixed_dictionaries(
        {
            "block_config": st.lists(st.integers(1, 4), min_size=1, max_size=4),
            "growth_rate": st.integers(4, 48),
            "num_init_features": st.integers(8, 96),
            "bn_size": st.integers(1, 4),
        }
    ),
    "anynet.yaml": st.fixed_dictionaries(
        {
            "stem_width": st.integers(8, 64),
            "stages": st.lists(
                st.tuples(
                    st.integers(1, 3),
                    st.sampled_from([16, 32, 48, 64]),
                    st.sampled_from([8, 16]),
                    st.sampled_from([1.0, 0.5]),
                ).map(list),
                min_size=1,
                max_size=4,
            ),
            "se_ratio": st.sampled_from([0.0, 0.25]),
        }
    ),
    "efficientnet.yaml": st.fixed_dictionaries(
        {
            "width_mult": st.sampled_from([0.5, 0.8, 1.0, 1.2]),
            "depth_mult": st.sampled_from([0.5, 1.0, 1.4]),
            "resolution": st.sampled_from([64, 96, 224]),
        }
    ),
    "vgg.yaml": st.fixed_dictionaries(
        {
            "arch": st.lists(
                st.tuples(st.integers(1, 2), st.sampled_from([8, 16, 64])).map(list),
                min_size=5,
                max_size=5,
            ),
            "batch_norm": st.booleans(),
        }
    ),
    "unet.yaml": st.fixed_dictionaries({"base": st.sampled_from([4, 8, 16])}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_file_at_defaults_builds_random_family_members(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(sorted(FAMILIES)))
    params = data.draw(FAMILIES[spec])
    assume(_compiles(spec, params))
    assert_same_as_compiled(spec, params)


# A head that flattens what a loop of poolings leaves: its linear layer's width depends on
# the input's height and width, which the file carries through `__init__`.
SIZED = """
cnngraph: 1
name: mnist_cnn
input: [1, 28, 28]
params: {width: 16, depth: 2, num_classes: 10}
blocks:
  conv_pool:
    params: {out: int}
    layers:
      - {op: conv2d, out_channels: $out, kernel_size: 3, padding: 1}
      - relu
      - {op: max_pool2d, kernel_size: 2}
  head:
    params: {classes: int}
    layers:
      - flatten
      - {op: linear, out_features: 128}
      - relu
      - {op: linear, out_features: $classes}
layers:
  features:
    block: conv_pool
    repeat: $depth
    out: $width
  classifier: {block: head, classes: $num_classes}
"""


@settings(max_examples=15, deadline=None)
@given(depth=st.integers(0, 4), width=st.integers(1, 24), classes=st.integers(1, 12))
def test_sizes_are_carried_where_a_layer_needs_them(depth: int, width: int, classes: int) -> None:
    default = cnngraph.load(SIZED)
    source, takes_params = parametric(default, "sized.yaml")
    assert takes_params
    assert "in_size: tuple[int, int]" in source
    params = {"depth": depth, "width": width, "num_classes": classes}
    compiled = cnngraph.load(SIZED, params=params)
    namespace: dict[str, Any] = {"__name__": "sized"}
    exec(source, namespace)
    module = namespace["MnistCnn"](**params)
    assert sum(p.numel() for p in module.parameters()) == compiled.params
    with torch.no_grad():
        out = module(torch.randn(1, *compiled.input_shape))
    assert tuple(out.shape[1:]) == compiled.output_shape


# A residual block written as a list: an nn.Sequential subclass whose forward adds the input.
NUMBERED_RESIDUAL = """
cnngraph: 1
name: numbered_residual
input: [3, 16, 16]
params: {width: 8, depth: 2}
blocks:
  res:
    params: {expand: 2}
    layers:
      - {op: conv2d, out_channels: "${in_channels * expand}", kernel_size: 1}
      - {op: relu, inplace: true}
      - {op: conv2d, out_channels: $in_channels, kernel_size: 3, padding: 1}
      - batch_norm2d
    residual: {when: "${expand > 1}"}
layers:
  stem: {op: conv2d, out_channels: $width, kernel_size: 3, padding: 1}
  body: {block: res, repeat: $depth}
  tail: {block: res, expand: 1}
"""


@settings(max_examples=10, deadline=None)
@given(width=st.integers(1, 16), depth=st.integers(1, 3))
def test_numbered_blocks_with_a_residual_are_sequentials(width: int, depth: int) -> None:
    default = cnngraph.load(NUMBERED_RESIDUAL)
    source, takes_params = parametric(default, "numbered_residual.yaml")
    assert takes_params
    assert "class Res(nn.Sequential):" in source
    assert "= super().forward(x)\n" in source
    compiled = cnngraph.load(NUMBERED_RESIDUAL, params={"width": width, "depth": depth})
    namespace: dict[str, Any] = {"__name__": "numbered_residual"}
    exec(source, namespace)
    module = namespace["NumberedResidual"](width=width, depth=depth).eval()
    reference = compiled.to_module().eval()
    assert list(module.state_dict()) == list(reference.state_dict())
    module.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))


@pytest.mark.parametrize(
    ("spec", "params", "shape"),
    [
        ("lenet5.yaml", {"num_classes": 7}, (1, 32, 32)),
        ("resnet.yaml", {"layers": [2, 2, 3, 2], "block": "basic"}, (3, 96, 80)),
        ("efficientnet.yaml", {"width_mult": 0.5}, None),
    ],
)
def test_params_and_input_set_at_build_are_the_files_defaults(
    spec: str, params: dict[str, Any], shape: tuple[int, ...] | None
) -> None:
    """`cnngraph build --set ... --input ...`: the class built without arguments is the model
    compiled with those settings, and the file says how it was built."""
    compiled = cnngraph.load(SPECS / spec, params=params, input_shape=shape)
    source = compiled.torch_source()
    assert "# Built with " + ", ".join(f"{k}={v!r}" for k, v in params.items()) in source
    with torch.device("meta"):
        module = _exec(source, compiled.name)().eval()
        out = module(torch.empty(1, *compiled.input_shape))
    assert sum(p.numel() for p in module.parameters()) == compiled.params
    assert list(module.state_dict()) == _compiled_state_keys(compiled)
    assert tuple(out.shape[1:]) == compiled.output_shape


def test_a_text_set_at_build_stays_text() -> None:
    """`--set s='$w'` is the text `$w`, in the compile and in the file's default."""
    text = "cnngraph: 1\nname: setstr\ninput: [3, 8, 8]\nparams: {w: 4, s: abc}\nlayers:\n"
    text += '  c: {op: conv2d, out_channels: "${len(s) + w}", kernel_size: 1}\n'
    compiled = cnngraph.load(text, params={"s": "$w"})
    module = _exec(compiled.torch_source(), compiled.name)()
    assert tuple(module(torch.zeros(1, 3, 8, 8)).shape[1:]) == compiled.output_shape == (6, 8, 8)


def test_a_snapshot_says_why_and_takes_no_arguments() -> None:
    """Where a construct is not translated (here a join switched by a param), the file is the
    compiled expansion: its header names the construct, and no param is an argument that
    could be ignored."""
    text = """
cnngraph: 1
name: conditional_join
input: [3, 16, 16]
params: {skip: true, width: 8}
layers:
  a: {op: conv2d, out_channels: $width, kernel_size: 3, padding: 1}
  b: {op: conv2d, out_channels: $width, kernel_size: 3, padding: 1}
  sum: {op: add, from: [a, b], if: $skip}
  head: {op: conv2d, out_channels: 4, kernel_size: 1}
"""
    model = cnngraph.load(text, params={"width": 5})
    source, takes_params = parametric(model, "conditional_join.yaml")
    assert not takes_params
    assert "a conditional join" in source.split('"""')[0]
    namespace: dict[str, Any] = {"__name__": "conditional_join"}
    exec(source, namespace)
    cls = namespace["ConditionalJoin"]
    assert list(inspect.signature(cls).parameters) == []
    assert sum(p.numel() for p in cls().parameters()) == model.params


def _spec(name: str, params: str, blocks: str, layers: str) -> str:
    return (
        f"cnngraph: 1\nname: {name}\ninput: [3, 16, 16]\nparams: {params}\n"
        f"blocks:\n{blocks}\nlayers:\n{layers}"
    )


HEAD = (
    "  pool: {op: adaptive_avg_pool2d, output_size: 1}\n"
    "  flat: flatten\n"
    "  fc: {op: linear, out_features: 3}\n"
)
# Specs that once built wrong networks, each with other params to build it at.
EDGE_CASES = {
    # a param named like the writer's own channel counter
    "channels_param": (
        _spec(
            "channels_param",
            "{channels: 4}",
            "  {}",
            "  c1: {op: conv2d, out_channels: $channels, kernel_size: 3, padding: 1}\n"
            "  more:\n"
            '    - {op: conv2d, out_channels: "${channels * 2}", kernel_size: 3, padding: 1,'
            " repeat: 2}\n" + HEAD,
        ),
        [{"channels": 3}],
    ),
    # a layer norm's shape after a loop of strided convs
    "layer_norm_after_a_loop": (
        _spec(
            "layer_norm_after_a_loop",
            "{n: 2}",
            "  {}",
            "  convs:\n"
            "    - {op: conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: 1,"
            " repeat: $n}\n  norm: layer_norm\n" + HEAD,
        ),
        [{"n": 1}, {"n": 3}],
    ),
    # blocks of different strides chosen by a param, then a size-dependent linear
    "chosen_strides": (
        _spec(
            "chosen_strides",
            "{kind: same}",
            "  same:\n    layers:\n"
            "      - {op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}\n"
            "  half:\n    layers:\n"
            "      - {op: conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}",
            "  feats:\n    - {block: $kind, spread: true}\n  flat: flatten\n"
            "  fc: {op: linear, out_features: 3}\n",
        ),
        [{"kind": "half"}],
    ),
    # a table of one column, and one of escaped `$$` strings
    "tables": (
        _spec(
            "tables",
            "{}",
            "  b:\n    params: {c: int}\n    layers:\n      - {op: conv2d, out_channels: $c,"
            " kernel_size: 1}\n"
            "  t:\n    params: {tag: str, c: 4}\n    layers:\n"
            "      - {op: conv2d, out_channels: $c, kernel_size: 1}\n"
            "      - {op: batch_norm2d, if: \"${tag == '$x'}\"}",
            "  f:\n    - {block: b, c: 8}\n    - {block: b, c: 16}\n    - {block: b, c: 32}\n"
            '  g:\n    - {block: t, tag: "$$x"}\n    - {block: t, tag: "$$x"}\n'
            "    - {block: t, tag: y, c: 5}\n",
        ),
        [],
    ),
    # a pool whose stride a param may leave null (the kernel's)
    "pool_stride_param": (
        _spec(
            "pool_stride_param",
            "{k: 2, s: null}",
            "  {}",
            "  p: {op: max_pool2d, kernel_size: $k, stride: $s}\n  flat: flatten\n"
            "  fc: {op: linear, out_features: 3}\n",
        ),
        [{"s": 1}, {"k": 4}],
    ),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_build_as_compiled(name: str) -> None:
    text, others = EDGE_CASES[name]
    default = cnngraph.load(text)
    source, takes_params = parametric(default, f"{name}.yaml")
    for params in [{}, *others]:
        compiled = cnngraph.load(text, params=params)
        namespace: dict[str, Any] = {"__name__": name}
        exec(source, namespace)
        cls = namespace[camel(name)]
        module = (cls(**params) if takes_params else cls()).eval()
        if not takes_params:  # a snapshot is the defaults' network only
            compiled = default
        assert sum(p.numel() for p in module.parameters()) == compiled.params
        assert list(module.state_dict()) == _compiled_state_keys(compiled)
        with torch.no_grad():
            out = module(torch.randn(1, *compiled.input_shape))
        assert tuple(out.shape[1:]) == compiled.output_shape
