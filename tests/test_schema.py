"""The JSON Schema accepts every spec in specs/ and rejects the obvious mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cnngraph.schema import json_schema

from .conftest import SPECS


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: Path(p).name)
def test_specs_conform(validator: Any, path: Path) -> None:
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert errors == []


@pytest.mark.parametrize(
    "layer",
    [
        {"op": "conv2d", "out_channels": 4, "kernal_size": 3},
        {"op": "nope"},
        {"op": "conv2d", "out_channels": "four", "kernel_size": 3},
        {"op": "conv2d", "out_channels": 4, "kernel_size": 1, "init": "kaiming"},
        {"op": "conv2d", "out_channels": 4, "kernel_size": 1, "init": {"weight": "he"}},
        {"op": "conv2d", "out_channels": 4, "kernel_size": 1, "init": {"biases": "keep"}},
    ],
)
def test_mistakes_are_flagged(validator: Any, layer: dict[str, Any]) -> None:
    spec = {"cnngraph": 1, "name": "t", "input": [3, 8, 8], "layers": {"c": layer}}
    assert not validator.is_valid(spec)


def test_expressions_are_allowed(validator: Any) -> None:
    spec = {
        "cnngraph": 1,
        "name": "t",
        "input": [3, "$size", "$size"],
        "params": {"size": 8},
        "layers": {
            "c": {"op": "conv2d", "out_channels": "${4 * 2}", "kernel_size": "$k", "repeat": 2}
        },
    }
    assert validator.is_valid(spec)


def test_layer_init_takes_a_scheme_or_a_rule(validator: Any) -> None:
    conv = {"op": "conv2d", "out_channels": 4, "kernel_size": 1}
    for init in ["kaiming_normal", {"weight": "normal", "bias": "keep"}, {"bias": "keep"}, "$i"]:
        layers = {"c": {**conv, "init": init}}
        spec = {"cnngraph": 1, "name": "t", "input": [3, 8, 8], "layers": layers}
        assert validator.is_valid(spec), init


def test_a_spec_may_name_its_schema(validator: Any) -> None:
    """`$schema:` at the top of a spec (how editors find the schema) is part of the format,
    and the schema has an `$id`."""
    import cnngraph

    text = (
        "$schema: ./cnngraph.schema.json\ncnngraph: 1\nname: t\ninput: [3, 8, 8]\nlayers: [relu]\n"
    )
    validator.validate(yaml.safe_load(text))
    assert cnngraph.load(text).name == "t"
    assert json_schema()["$id"] == "urn:cnngraph:spec:1"


def test_every_op_is_offered_after_op() -> None:
    """What an editor completes after `op:`: one `const` per op of the registry."""
    from cnngraph.ops import OPS

    entries = json_schema()["$defs"]["LayerEntry"]["anyOf"]
    offered = [
        e["properties"]["op"]["const"]
        for e in entries
        if "const" in e.get("properties", {}).get("op", {})
    ]
    assert sorted(offered) == sorted(OPS)
    # and all of them in one list, for an entry that satisfies no op yet: yaml-language-server
    # offered only the 20 ops without required fields after a bare `op: ` (conv2d missing)
    names = json_schema()["$defs"]["LayerEntry"]["properties"]["op"]["anyOf"][0]
    assert names["enum"] == list(OPS) and len(names["markdownEnumDescriptions"]) == len(OPS)


def test_every_op_is_described() -> None:
    """What an editor shows beside an op and each of its fields: a sentence."""
    entries = json_schema()["$defs"]["LayerEntry"]["anyOf"]
    ops = [e for e in entries if "const" in e.get("properties", {}).get("op", {})]
    assert ops and all(len(e["description"].split()) >= 3 for e in ops)
    # on the op name itself too: what a hover over `conv2d` shows
    assert all(e["properties"]["op"]["description"] == e["description"] for e in ops)
    fields = {(e["title"], k): p for e in ops for k, p in e["properties"].items() if k != "op"}
    assert [where for where, p in fields.items() if not p.get("description")] == []
