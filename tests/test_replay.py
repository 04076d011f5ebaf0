"""Block expansions replayed (replay.py) give the graph expanding every call gives: the same
nodes, fields, scopes, locations and diagnostics, on every spec, sampled design spaces and
random specs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnngraph
from cnngraph import replay
from cnngraph.expr import Deferred, ShapeSymbol
from cnngraph.space import Space

from .conftest import SPECS
from .random_specs import random_specs


def _shown(value: Any) -> Any:
    if isinstance(value, ShapeSymbol):
        return ("in_channels of", value.node)
    if isinstance(value, Deferred):
        return ("expression", value.text, sorted((k, _shown(v)) for k, v in value.env.items()))
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return repr(value)


def _snapshot(spec: Any, **kwargs: Any) -> Any:
    try:
        model = cnngraph.load(spec, **kwargs)
    except cnngraph.SpecError as exc:
        return [(d.code, d.message, str(d.location), d.notes) for d in exc.diagnostics]
    graph = model.graph
    nodes = [
        (n.name, n.kind, n.inputs, {k: _shown(v) for k, v in n.fields.items()}, n.src)
        for n in graph.nodes.values()
    ]
    more = [
        (n.field_src, n.scope, _shown(n.when), repr(n.op), n.init) for n in graph.nodes.values()
    ]
    scopes = [
        (s.path, s.kind, s.label, s.src, s.output, s.inputs, sorted(map(str, s.params.items())))
        for s in graph.scopes.values()
    ]
    warnings = [(d.code, d.message, str(d.location), d.notes) for d in model.warnings]
    return nodes, more, scopes, graph.outputs, model.params, model.macs, warnings


def _same_with_and_without_replay(
    monkeypatch: pytest.MonkeyPatch, spec: Any, **kwargs: Any
) -> None:
    replayed = _snapshot(spec, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(replay, "key", lambda *args: None)  # every call expanded
        expanded = _snapshot(spec, **kwargs)
    assert replayed == expanded


@pytest.mark.parametrize("file", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_every_spec(monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    _same_with_and_without_replay(monkeypatch, SPECS / file)


def test_family_members_and_sampled_anynets(monkeypatch: pytest.MonkeyPatch) -> None:
    resnets = ({"layers": [3, 8, 36, 3]}, {"block": "basic", "layers": [2, 2, 2, 2]})
    for params in (*resnets, {"groups": 32, "width_per_group": 4}):
        _same_with_and_without_replay(monkeypatch, SPECS / "resnet.yaml", params=params)
    _same_with_and_without_replay(
        monkeypatch, SPECS / "efficientnet.yaml", params={"width_mult": 0.5, "depth_mult": 2.0}
    )
    stages = "[[int(1, 6), log_int(8, 512, 8), choice(1, 2, 4, 8, 16, 32), choice(1.0, 0.5)]] * 4"
    space = Space({}, {"stages": stages, "se_ratio": "choice(0.0, 0.25)"}, 12, 1)
    for values in space.variants():
        _same_with_and_without_replay(monkeypatch, SPECS / "anynet.yaml", params=values)


def test_calls_that_differ_only_where_a_param_was_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls with equal params written in different places: each layer's error points at
    its own call site, so the second call is not a replay of the first."""
    spec = """
cnngraph: 1
name: sites
input: [4, 8, 8]
blocks:
  b:
    params: {c: int}
    layers:
      - {op: conv2d, out_channels: $c, kernel_size: 3}
layers:
  one: {block: b, c: 0}
  two: {block: b, c: 0}
"""
    _same_with_and_without_replay(monkeypatch, spec)
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(spec)
    assert [d.location.line for d in info.value.diagnostics] == [11, 12]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=random_specs(), copies=st.integers(1, 3), stride=st.sampled_from([None, [2, 1]]))
def test_random_specs(
    monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], copies: int, stride: Any
) -> None:
    """Random specs, their block calls repeated (copies alike are replayed; a per-repeat
    stride list makes the first copy differ)."""
    _same_with_and_without_replay(monkeypatch, spec)
    for entry in spec["layers"].values():
        if "block" in entry:
            entry["repeat"] = copies
            if stride is not None and entry["block"] == "res":
                entry["stride"] = stride[:copies]
    _same_with_and_without_replay(monkeypatch, spec)


WIRING = """
cnngraph: 1
name: dup
input: [4, 8, 8]
blocks:
  mix:
    inputs: [a, b]
    layers:
      ca: {op: conv2d, out_channels: 4, kernel_size: 1, from: a}
      cb: {op: conv2d, out_channels: 8, kernel_size: 1, from: b}
      cat: {op: concat, from: [ca, cb]}
  b:
    layers:
      conv: {op: conv2d, out_channels: 4, kernel_size: 1}
      relu: {op: relu}
layers:
  x: {op: conv2d, out_channels: 4, kernel_size: 1}
  y: {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  one: {block: mix, from: [x, x]}
  two: {block: mix, from: [x, y]}
  s: {block: b, from: one}
  t: {block: b, from: s.conv}
outputs: [two, t]
"""

RECURSION = """
cnngraph: 1
name: cyc
input: [4, 8, 8]
blocks:
  c:
    layers:
      conv: {op: conv2d, out_channels: 4, kernel_size: 1}
      inner: {block: d, deep: false}
  d:
    params: {deep: bool}
    layers:
      relu: {op: relu}
      more: {block: c, if: $deep}
layers:
  x: {block: c}
  y: {block: d, deep: true}
"""

_CHAIN = "\n".join(
    f"  L{i}:\n    layers:\n      r: {{op: relu}}\n      n: {{block: L{i + 1}}}" for i in range(21)
)
DEPTH = f"""
cnngraph: 1
name: deep
input: [4, 8, 8]
blocks:
{_CHAIN}
  L21:
    layers:
      r: {{op: relu}}
layers:
  a: {{block: L10}}
  b: {{block: L0}}
"""

WORK = """
cnngraph: 1
name: work
input: [4, 8, 8]
params:
  t: [1, 2]
blocks:
  b:
    layers:
      c:
        op: conv2d
        out_channels: "${min([4 for i in range(4000) if i >= 0 and len(t) > 0])}"
        kernel_size: 1
layers:
  s: {block: b, repeat: 60}
"""

_OFF = "\n".join("      - {op: relu, if: false}" for _ in range(2000))
LIMITS = f"""
cnngraph: 1
name: limits
input: [4, 8, 8]
blocks:
  b:
    layers:
      r: {{op: relu, repeat: 1000}}
      c: {{block: c}}
  c:
    layers:
{_OFF}
layers:
  s: {{block: b, repeat: 60}}
"""

SIGNED = """
cnngraph: 1
name: signed
input: [4, 8, 8]
blocks:
  b:
    params: {s: list}
    layers:
      act: {op: leaky_relu, negative_slope: "${s[0]}"}
layers:
  x: {block: b, for: "v in ${[[0.0], [-0.0]]}", s: $v}
"""


@pytest.mark.parametrize(
    ("spec", "first"),
    [
        (WIRING, None),  # a block fed [x, x], then [x, y]; a call fed a tap into another
        (RECURSION, "CG309"),  # a block found using itself only when called inside another
        (DEPTH, "CG309"),  # blocks nested past the limit only in the second call
        (WORK, "CG304"),  # the compile's expression budget spent by repeated calls
        (LIMITS, "CG311"),  # which limit, where: as expanding reaches it
        (SIGNED, None),  # -0.0 is not 0.0
    ],
)
def test_what_a_replay_must_not_hide(
    monkeypatch: pytest.MonkeyPatch, spec: str, first: str | None
) -> None:
    """Found by a review of the first version: each differed with replay."""
    _same_with_and_without_replay(monkeypatch, spec)
    if first is None:
        cnngraph.load(spec)
    else:
        with pytest.raises(cnngraph.SpecError) as info:
            cnngraph.load(spec)
        assert first in [d.code for d in info.value.diagnostics]
