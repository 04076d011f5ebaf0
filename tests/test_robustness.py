"""Whatever the input, cnngraph either compiles it or raises SpecError: never another exception."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnngraph

from .conftest import SPECS

# CNNGRAPH_FUZZ_EXAMPLES=20000 for a deeper search than the test suite's default.
EXAMPLES = int(os.environ.get("CNNGRAPH_FUZZ_EXAMPLES", "400"))
SEEDS = [yaml.safe_load(p.read_text()) for p in sorted(SPECS.glob("*.yaml"))]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["$x", "${", "${1/0}", "$num_classes", "relu", "conv2d", "same", "-1"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _compile(data: Any) -> None:
    try:
        cnngraph.load(data)
    except cnngraph.SpecError as exc:
        assert exc.diagnostics, "a SpecError always carries diagnostics"
        for d in exc.diagnostics:
            assert d.message and d.code.startswith("CG")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    choice=st.integers(0, 10**6),
    value=values,
    delete=st.booleans(),
)
def test_mutated_specs_fail_cleanly(seed: int, choice: int, value: Any, delete: bool) -> None:
    data = copy.deepcopy(SEEDS[seed])
    paths = _paths(data)[1:]
    path = paths[choice % len(paths)]
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    _compile(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#$ \n\tabc01")), max_size=80))
def test_random_text_fails_cleanly(text: str) -> None:
    _compile("cnngraph: 1\n" + text)


@settings(max_examples=EXAMPLES // 4, deadline=None)
@given(value=values)
def test_random_top_level_values(value: Any) -> None:
    _compile({"cnngraph": 1, "name": "t", "input": [3, 8, 8], "layers": value})


LIMITS = {
    "a 4,000-digit hex integer": (
        "layers:\n  c: {op: conv2d, out_channels: 0x" + "f" * 4000 + ", kernel_size: 1}\n",
        "CG101",
    ),
    "a 499-term sum": (
        'layers:\n  c: {op: conv2d, out_channels: "${' + "+".join(["1"] * 499) + '}", '
        "kernel_size: 1}\n",
        "CG301",
    ),
    "900 unary minuses": (
        'layers:\n  c: {op: conv2d, out_channels: "${' + "-" * 900 + '4}", kernel_size: 1}\n',
        "CG301",
    ),
    "500 nested block calls": (
        "blocks:\n"
        + "".join(f"  b{i}:\n    layers:\n      - {{block: b{i + 1}}}\n" for i in range(500))
        + "  b500:\n    layers:\n      - {op: relu}\nlayers:\n  x: {block: b0}\n",
        "CG309",
    ),
    "an infinite upsampling factor": (
        "layers:\n  u: {op: upsample, scale_factor: .inf}\n",
        "CG202",
    ),
}


@pytest.mark.parametrize("case", sorted(LIMITS))
def test_limits_end_in_a_located_diagnostic(case: str) -> None:
    body, code = LIMITS[case]
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load("cnngraph: 1\nname: t\ninput: [3, 8, 8]\n" + body)
    found = [d for d in info.value.diagnostics if d.code == code]
    assert found and found[0].location is not None and found[0].location.line > 0


def test_a_huge_param_value_is_a_diagnostic() -> None:
    spec = "cnngraph: 1\nname: t\ninput: [3, 8, 8]\nparams: {w: 4}\n"
    spec += "layers:\n  c: {op: conv2d, out_channels: $w, kernel_size: 1}\n"
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(spec, params={"w": 10**5000})
    assert info.value.diagnostics[0].code == "CG307"


def test_reading_specs_keeps_nothing_of_earlier_reads() -> None:
    """A notebook or a service loads specs all day: the YAML nodes of a read must not outlive
    it (a module-level constructor once kept every scalar node it had seen)."""
    import gc

    text = (SPECS / "efficientnet.yaml").read_text()

    def yaml_nodes() -> int:
        gc.collect()
        kinds = (yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode)
        return sum(type(o) in kinds for o in gc.get_objects())  # (isinstance wakes lazy modules)

    cnngraph.load(text)
    before = yaml_nodes()
    for _ in range(5):
        cnngraph.load(text)
    assert yaml_nodes() == before
