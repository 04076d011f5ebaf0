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
