"""The spec file format's skeleton: top level and block definitions, as pydantic models.

Layer entries are validated later, per op, once their expressions are evaluated.
"""

from __future__ import annotations

import keyword
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

FORMAT_VERSION = 1

# Initial-weight schemes a spec may ask for (torch's defaults apply elsewhere); what each means
# is in docs/pytorch.md and in the generated code.
InitWeight = Literal[
    "kaiming_normal",
    "kaiming_normal_fan_in",
    "kaiming_uniform",
    "kaiming_uniform_fan_out_linear",
    "xavier_normal",
    "xavier_uniform",
    "normal",
    "trunc_normal",
    "uniform_fan_out",
    "ones",
    "zeros",
]
# A scheme by name sets the weights and zeroes the biases; `default` is torch's own init.
InitScheme = Literal["default", InitWeight]
InitKind = Literal[
    "conv2d", "conv_transpose2d", "linear", "batch_norm2d", "group_norm", "layer_norm"
]
INIT_WEIGHTS: tuple[str, ...] = get_args(InitWeight)
INIT_SCHEMES: tuple[str, ...] = ("default", *INIT_WEIGHTS)
INIT_KINDS: tuple[str, ...] = get_args(InitKind)

Layers = dict[str, Any] | list[Any]
# The keys of a layer entry that are not an op's fields or a block's params.
ENTRY_KEYS = frozenset({"op", "block", "from", "repeat", "for", "names", "spread", "if", "init"})
# A `$name` reference or a `${...}` expression, allowed wherever a value is.
Expression = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InitRule(_Strict):
    """Initial weights and biases set apart, where a network treats them differently."""

    weight: Literal["keep", InitWeight] = Field(
        default="keep", description="a scheme for the weights, or keep: as torch made them"
    )
    bias: Literal["zeros", "keep"] = Field(
        default="zeros", description="zeros, or keep: as torch made them"
    )
    std: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="the standard deviation of normal and trunc_normal (default 0.01)",
    )

    @model_validator(mode="after")
    def _std_of_a_normal(self) -> InitRule:
        if self.std is not None and self.weight not in NORMAL_SCHEMES:
            raise ValueError(f"std applies to {' and '.join(NORMAL_SCHEMES)} weights only")
        return self


NORMAL_SCHEMES = ("normal", "trunc_normal")  # the schemes that take a std


class Init(NamedTuple):
    """A layer's initial weights after normalizing: the weight's and the bias's scheme (a
    scheme name, "keep" or "default"), and the std of a normal scheme where one is given."""

    weight: str
    bias: str
    std: float | None = None

    @property
    def is_default(self) -> bool:
        """torch's own initialization, which construction already did."""
        return self.weight == "default"


def init_rule(value: str | InitRule) -> Init:
    """A spec's `init` value as (weight, bias, std): a scheme name zeroes the biases."""
    if isinstance(value, InitRule):
        return Init(value.weight, value.bias, value.std)
    return Init("default", "default") if value == "default" else Init(value, "zeros")


class ResidualSpec(_Strict):
    """Add the block's input to its result."""

    projection: str | None = Field(
        default=None,
        description="name of a 1x1 conv (+ batch norm) shortcut, created only "
        "when the shapes differ (torchvision calls it `downsample`)",
    )
    norm: bool = Field(default=True, description="batch norm after the projection conv")
    when: bool | Expression = Field(
        default=True,
        description="condition; may use in_channels, e.g. ${stride == 1 and in_channels == out}",
    )


class BlockDef(_Strict):
    """A reusable, parameterized block; becomes one nn.Module class in generated code."""

    description: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="name: type (int, float, bool, str, list, any) for a "
        "required param, or name: default",
    )
    inputs: list[str] = Field(
        default_factory=lambda: ["input"],
        min_length=1,
        description="names of the block's input tensors",
    )
    layers: Layers | None = Field(default=None, description="layers applied in sequence")
    branches: dict[str, Layers] | None = Field(
        default=None,
        description="parallel paths from the block input, joined by `merge`; "
        "each is a list or mapping of layers, or a single layer named after the branch",
    )
    merge: Literal["concat", "add"] | None = None
    residual: bool | ResidualSpec = False
    gate: bool = Field(
        default=False, description="multiply the block input by the result (squeeze-excitation)"
    )
    then: Layers | str | None = Field(
        default=None, description="layers after the join; a bare op name makes a node called `then`"
    )
    output: str | None = Field(
        default=None, description="the layer whose result the block returns; default: the last"
    )

    # `residual:` written before the body: its projection is built first (torchvision's RegNet
    # builds `proj` before `f`), which decides the random numbers a seed gives each module
    _residual_first: bool = PrivateAttr(default=False)

    @property
    def residual_first(self) -> bool:
        return self._residual_first

    @model_validator(mode="wrap")
    @classmethod
    def _note_order(cls, data: Any, handler: Any) -> Any:
        block = handler(data)
        if isinstance(data, dict) and "residual" in data:
            keys = list(data)
            body = [keys.index(k) for k in ("layers", "branches") if k in keys]
            block._residual_first = bool(body) and keys.index("residual") < min(body)
        return block

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not (name.isidentifier() and name.isascii()) or keyword.iskeyword(name):
                raise ValueError(f"input '{name}' is not an identifier (a-z, A-Z, 0-9 and _)")
            if name == "self" or (name.startswith("__") and name.endswith("__")):
                raise ValueError(f"input '{name}' is Python's; use another name")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"input '{repeated[0]}' is listed twice: each input has its own name")
        return names

    @model_validator(mode="after")
    def _one_body(self) -> BlockDef:
        if (self.layers is None) == (self.branches is None):
            raise ValueError("a block needs exactly one of `layers` or `branches`")
        if self.branches is not None and self.merge is None:
            raise ValueError("`branches` need `merge: concat` or `merge: add`")
        if self.branches is None and self.merge is not None:
            raise ValueError("`merge` applies only to `branches`")
        return self


class SpecFile(_Strict):
    """A cnngraph model spec."""

    schema_: str | None = Field(
        default=None, alias="$schema", description="the JSON Schema an editor checks this file with"
    )
    cnngraph: Literal[1] = Field(description="format version")
    name: str
    description: str | None = None
    input: list[int | Expression] = Field(
        min_length=1,
        max_length=3,
        description="per-sample input shape: [C, H, W] or "
        "[features]; the batch dimension is implicit",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="model-level params and their defaults"
    )
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    layers: Layers
    outputs: str | list[str] | dict[str, str] | None = Field(
        default=None, description="the model's outputs; default: the last layer"
    )
    init: dict[InitKind, InitScheme | InitRule] = Field(
        default_factory=dict,
        description="initial weights per op kind, e.g. {conv2d: kaiming_normal, linear: "
        "{weight: normal, bias: keep}}; a layer's own `init:` overrides",
    )
    eval_output: str | None = Field(
        default=None,
        description="the output label the generated module returns alone in eval mode "
        "(auxiliary heads are for training only)",
    )
