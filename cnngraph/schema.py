"""The JSON Schema of the spec format, for editors (yaml-language-server, VS Code) and CI."""

from __future__ import annotations

from typing import Any

from .ops import OPS
from .ops.base import FIELD_DESCRIPTIONS
from .spec import INIT_SCHEMES, SpecFile

SCHEMA_ID = "urn:cnngraph:spec:1"  # format version 1; a URN: no server needs to answer it
EXPRESSION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\$",
    "description": "a $param reference or a ${...} expression",
}
_ENTRY_KEYS: dict[str, Any] = {
    "from": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "input layer(s); default: the previous layer",
    },
    "repeat": {
        "anyOf": [{"type": "integer", "minimum": 0}, EXPRESSION],
        "description": "N copies in sequence: .0, .1, ... under a name; spread on in a list",
    },
    "if": {
        "anyOf": [{"type": "boolean"}, EXPRESSION],
        "description": "include this layer only when true",
    },
    "for": {
        "type": "string",
        "pattern": r"^\s*[A-Za-z_]\w*\s+in\s+\$",
        "description": "one copy per value: `for: stage in $arch` binds `stage` in each",
    },
    "names": {
        "type": "string",
        "description": "names of the copies: {i} counts from 0, {n} from 1, {param} a param",
    },
    "spread": {
        "type": "boolean",
        "description": "in a list: place the block's layers into it, numbered on",
    },
    "init": {
        "anyOf": [
            {"type": "string", "enum": list(INIT_SCHEMES)},
            {"$ref": "#/$defs/InitRule"},
            EXPRESSION,
        ],
        "description": "this layer's initial weights: a scheme, or {weight, bias}",
    },
}


def _with_expressions(prop: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {
        k: prop[k] for k in ("description", "default", "title") if k in prop
    }
    core = {k: v for k, v in prop.items() if k not in described}
    return {"anyOf": [core, EXPRESSION], **described}


def _op_entry(kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    schema = OPS[kind].model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    props = {
        name: _with_expressions({"description": FIELD_DESCRIPTIONS.get(name, ""), **p})
        for name, p in schema.get("properties", {}).items()
    }
    return {
        "type": "object",
        "title": kind,
        "description": _summary(kind),
        "properties": {
            "op": {"const": kind, "description": _summary(kind)},
            **props,
            **_ENTRY_KEYS,
        },
        "required": ["op", *schema.get("required", [])],
        "additionalProperties": False,
    }


def _summary(kind: str) -> str:
    """An op's description: the first paragraph of its class's docstring, on one line."""
    first = (OPS[kind].__doc__ or kind).strip().split("\n\n")[0]
    return " ".join(first.split())


def json_schema() -> dict[str, Any]:
    """The complete schema: the file skeleton with every op's fields spelled out."""
    schema = SpecFile.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    block_call = {
        "type": "object",
        "title": "block call",
        "properties": {"block": {"type": "string"}, **_ENTRY_KEYS},
        "required": ["block"],
        "additionalProperties": True,
        "description": "an instance of a block from `blocks`; other keys are its params",
    }
    defs["LayerEntry"] = {
        # Every op name in one place: an editor completing `op:` in an entry that does not yet
        # satisfy any op's branch (conv2d before its required fields) still offers them all.
        "properties": {
            "op": {
                "anyOf": [
                    {
                        "type": "string",
                        "enum": list(OPS),
                        "markdownEnumDescriptions": [_summary(kind) for kind in OPS],
                    },
                    EXPRESSION,
                ]
            }
        },
        "anyOf": [
            {"type": "string", "description": "an op with default fields, e.g. relu"},
            *(_op_entry(kind, defs) for kind in OPS),
            block_call,
            {
                "type": "object",
                "title": "op chosen by a param",
                "properties": {"op": EXPRESSION, **_ENTRY_KEYS},
                "required": ["op"],
                "additionalProperties": True,
            },
            {
                "type": "object",
                "title": "inline sequence",
                "properties": {"layers": {"$ref": "#/$defs/Layers"}, **_ENTRY_KEYS},
                "required": ["layers"],
                "additionalProperties": False,
                "description": "a nested sequence of named or numbered layers",
            },
            {
                "type": "array",
                "items": {"$ref": "#/$defs/LayerEntry"},
                "description": "an inline sequence: layers numbered 0, 1, ...",
            },
        ],
    }
    entry = {"$ref": "#/$defs/LayerEntry"}
    defs["Layers"] = {
        "anyOf": [
            {"type": "object", "additionalProperties": entry, "description": "named layers"},
            {"type": "array", "items": entry, "description": "layers numbered 0, 1, ..."},
        ]
    }
    layers = {"$ref": "#/$defs/Layers"}
    schema["properties"]["layers"] = layers
    block = defs["BlockDef"]["properties"]
    block["layers"] = {"anyOf": [layers, {"type": "null"}], "default": None}
    branch = {"anyOf": [layers, entry]}  # a body, or one layer named after the branch
    block["branches"] = {
        "anyOf": [{"type": "object", "additionalProperties": branch}, {"type": "null"}],
        "default": None,
    }
    block["then"] = {"anyOf": [layers, entry, {"type": "null"}], "default": None}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "cnngraph spec"
    return schema
