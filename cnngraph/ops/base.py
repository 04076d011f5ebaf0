"""The Op base class: one subclass per op kind holds its fields, shape rule, costs, torch emission
and label. Field names follow the torch.nn constructor's keyword arguments.

Annotations here are evaluated when the module runs (no `from __future__ import annotations`):
pydantic reads the base's annotations again for every op class, and strings would be compiled
and evaluated each time, a tenth of the package's import."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .. import symbolic as sym
from ..formulas import IDENTITY, SizeMap
from ..symbolic import Expr

Shape = tuple[int, ...]
# A per-sample shape in generated code: a source expression per dim, None where unknown.
ShapeCode = tuple[Expr | None, ...]

# Sizes beyond this are typos, not models; they are refused before they cost anything.
MAX_DIM = 1 << 24

PosInt = Annotated[int, Field(ge=1, le=MAX_DIM)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_DIM)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ShapeError(Exception):
    """An op cannot accept its input shapes. `field` names the offending field, if one is."""

    def __init__(
        self, code: str, message: str, hint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.field = code, message, hint, field


def to_pair(value: Any) -> Any:
    """Accept `3` or `[3, 5]` where torch accepts an int or a tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list) and len(value) == 2:
        return tuple(value)
    if isinstance(value, list):
        raise ValueError(f"expected one integer or a pair [h, w], got {len(value)} values")
    return value


_PAIR_INPUT = BeforeValidator(to_pair, json_schema_input_type=int | list[int])
PosPair = Annotated[tuple[PosInt, PosInt], _PAIR_INPUT]
NonNegPair = Annotated[tuple[NonNegInt, NonNegInt], _PAIR_INPUT]


def fmt_kernel(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    """One constructor argument: its value, keyword (None if positional), the spec field it
    comes from (None when inferred from shapes), and the default that makes it omissible."""

    value: Any
    keyword: str | None = None
    field: str | None = None
    default: Any = _NO_DEFAULT

    def omissible(self, value: Any) -> bool:
        return (
            self.keyword is not None
            and self.default is not _NO_DEFAULT
            and (value == self.default or literal(value) == literal(self.default))
        )


@dataclass(frozen=True)
class Call:
    """A torch constructor call, kept structured so that code generators can replace literal
    arguments by expressions; `source()` renders it with literals."""

    func: str
    args: tuple[Arg, ...] = ()

    def source(self) -> str:
        parts = []
        for arg in self.args:
            if arg.omissible(arg.value):
                continue
            text = arg.value.source() if isinstance(arg.value, Call) else literal(arg.value)
            parts.append(f"{arg.keyword}={text}" if arg.keyword else text)
        return f"{self.func}({', '.join(parts)})"


def call(
    func: str,
    positional: Sequence[tuple[Any, str | None]] = (),
    keywords: Sequence[tuple[str, Any, Any]] = (),
) -> Call:
    """`positional` holds (value, spec field or None); `keywords` (name, value, default), the
    spec field being the keyword itself, since fields follow torch's keyword names."""
    args = [Arg(value, None, field) for value, field in positional]
    args += [Arg(value, name, name, default) for name, value, default in keywords]
    return Call(func, tuple(args))


def literal(value: Any) -> str:
    """Python source for a value; a pair of equal numbers is written once, as torch allows."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1] is not None:
        return repr(value[0])
    return repr(value)


class Fields:
    """An op's fields as code: what the spec wrote, else the op's default, as `Expr`s."""

    def __init__(self, op: type["Op"], given: dict[str, Expr]) -> None:
        self.op = op
        self.given = given

    def __getitem__(self, name: str) -> Expr:
        if name in self.given:
            return self.given[name]
        info = self.op.model_fields[name]
        return sym.const(info.default)


# What a field means, by name, for the ops that share it (editors show it; an op's own
# `Field(description=...)` takes precedence).
FIELD_DESCRIPTIONS: dict[str, str] = {
    "out_channels": "channels of the output",
    "out_features": "features of the output",
    "in_channels": "channels of the input, if written: checked against the inferred count",
    "in_features": "features of the input, if written: checked against the inferred count",
    "num_features": "channels of the input, if written: checked against the inferred count",
    "num_channels": "channels of the input, if written: checked against the inferred count",
    "kernel_size": "window size: an int, or [height, width]",
    "stride": "step between windows: an int, or [height, width]",
    "padding": "zeros added on each side: an int, [height, width], `same` or `valid`",
    "dilation": "spacing between window elements: an int, or [height, width]",
    "groups": "split channels into this many groups (a divisor of both channel counts)",
    "bias": "add a learned bias",
    "padding_mode": "how the padding is filled: zeros, reflect, replicate or circular",
    "output_padding": "extra size on one side of the output (less than the stride)",
    "ceil_mode": "round the output size up, as torch (a last window may start in the padding)",
    "count_include_pad": "count the padding in each window's average",
    "divisor_override": "divide each window's sum by this instead of its size",
    "eps": "added to the variance for numerical stability",
    "momentum": "weight of each batch in the running statistics (null: a cumulative average)",
    "affine": "learn a scale and a shift per channel",
    "elementwise_affine": "learn a scale (and a shift) per element",
    "track_running_stats": "keep running mean and variance for evaluation",
    "num_groups": "groups the channels are normalized in",
    "inplace": "overwrite the input (saves memory; the input must not be read again)",
    "negative_slope": "slope below zero",
    "approximate": "none, or tanh for the faster approximation",
    "dim": "the dimension, counting the batch (1 is channels)",
    "p": "probability of an element being zeroed",
    "start_dim": "first dimension flattened (counting the batch)",
    "end_dim": "last dimension flattened (counting the batch)",
    "size": "output size: an int, or [height, width]",
    "mode": "the method, as torch names it",
    "align_corners": "align the corner pixels of input and output (bilinear and bicubic)",
    "alpha": "scale of the normalizing sum",
    "beta": "exponent of the normalizing sum",
    "k": "added to the normalizing sum",
    "norm": "a batch norm after the projection's convolution",
    "chunks": "equal pieces the dimension is cut into (its size must divide)",
    "index": "which piece, from 0",
    "sizes": "the sizes `dim` becomes (their product is its size; one may be -1)",
    "shape": "the per-sample shape, batch omitted (one size may be -1)",
}


class Op(BaseModel):
    """Base of every op. Subclasses set `kind`, fields, and override the rules they need."""

    # defer_build: a schema is built when an op is first used, not for every op at import.
    # allow_inf_nan=False: no torch layer takes an infinite or NaN setting, and the generated
    # code could not spell one without an import
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, defer_build=True, allow_inf_nan=False
    )

    kind: ClassVar[str]
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # min and max number of input tensors
    # What the op does, for diagrams: conv, norm, act, pool, join, linear, regularize, other.
    role: ClassVar[str] = "other"
    # For joins: the short mark a diagram draws instead of a box (+, x, cat).
    symbol: ClassVar[str | None] = None
    # A class the generated torch file defines itself for this op (imports stay torch only).
    torch_helper: ClassVar[str | None] = None
    # Whether autograd can do without this op's output, so that a later op may overwrite it in
    # place (conv and batch norm keep their inputs; relu, sigmoid and the like keep outputs).
    output_overwritable: ClassVar[bool] = False
    # How many leading inputs the torch code uses at run time (None: all); the rest are read
    # for their shapes only.
    runtime_inputs: ClassVar[int | None] = None
    # Whether values may move between axes (a reshape): a channel count may then depend on the
    # input's height and width, which size scans must not assume away.
    mixes_axes: ClassVar[bool] = False
    # Whether the op keeps its input's height and width, whatever they are (activations, norms).
    keeps_spatial_size: ClassVar[bool] = False
    # Example fields and input shapes: registry-wide tests check each op against torch with them.
    examples: ClassVar[Sequence[tuple[dict[str, Any], Sequence[Shape]]]] = ()

    def infer(self, shapes: Sequence[Shape]) -> Shape:
        """Output shape (per sample, batch omitted) for the given input shapes."""
        return shapes[0]

    def count_params(self, shapes: Sequence[Shape], out: Shape) -> int:
        return 0

    def size_map(self, axis: int) -> tuple[SizeMap, int] | None:
        """How a one-input op maps its C x H x W input's size along `axis` (0: height, 1:
        width) to its output's, and the least input size it accepts there, for every size at
        once: what sizes.py derives the valid input sizes from. None where no such rule is
        known (sizes are then tried one by one)."""
        return (IDENTITY, 1) if self.keeps_spatial_size else None

    def joined_size_map(self, axis: int, maps: Sequence[SizeMap]) -> SizeMap | None:
        """For an op of several inputs whose sizes along `axis` follow `maps`: the output's
        map, where the op accepts its inputs at every size; None otherwise."""
        return None

    def count_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        """Multiply-accumulates of conv and linear layers, batch 1, bias excluded."""
        return 0

    def label(self, shapes: Sequence[Shape] = ()) -> str:
        """A short description: the kind and its key attributes, e.g. `conv2d 3x3/2`."""
        return self.kind

    def edge_kind(self, position: int) -> str | None:
        """How a diagram draws the edge into input `position`: residual, concat, gate or
        plain (None)."""
        return None

    def is_identity(self, shapes: Sequence[Shape]) -> bool:
        """Whether, for these input shapes, the op passes its first input through unchanged."""
        return False

    def has_weights(self) -> bool:
        """Whether the layer holds a weight for `init:` to set (a norm may have none)."""
        return True

    def symmetric(self) -> bool:
        """Whether the op treats height and width alike: no unequal pair among its fields, and
        no values moved between axes."""
        if self.mixes_axes:
            return False
        return not any(
            isinstance(v, tuple) and len(v) == 2 and v[0] != v[1] for v in self.__dict__.values()
        )

    def torch_call(self, shapes: Sequence[Shape]) -> Call | None:
        """The torch.nn constructor call, or None when the op is written inline in forward."""
        return None

    def torch_module(self, shapes: Sequence[Shape]) -> str | None:
        """Source of the constructor call with literal arguments."""
        made = self.torch_call(shapes)
        return None if made is None else made.source()

    def torch_forward(self, module: str, args: Sequence[str]) -> str:
        """Source of the forward-pass expression applying this op to `args`."""
        return f"{module}({args[0]})"

    def torch_forward_inplace(self, args: Sequence[str]) -> str | None:
        """A statement computing the op into `args[0]` in place, where the op has one."""
        return None

    # ---- rules for generated code: the same facts as above, over source expressions ----

    @classmethod
    def has_module(cls) -> bool:
        """Whether torch code holds this op as a submodule (joins are written in forward)."""
        return cls.torch_call is not Op.torch_call

    @classmethod
    def shape_rule(cls, f: Fields, inputs: Sequence[ShapeCode]) -> ShapeCode | None:
        """The output shape as code (None: not expressible); by default the first input's."""
        return inputs[0]

    @classmethod
    def keeps_size_rule(cls, f: Fields) -> Expr:
        """Whether the op keeps height and width for every input size."""
        return sym.const(True)

    @classmethod
    def stride_rule(cls, f: Fields) -> Expr | None:
        """The factor by which the op divides height and width (a 1x1 projection's stride)."""
        return sym.const(1)


def expect_rank(kind: str, shape: Shape, rank: int, hint: str | None = None) -> None:
    if len(shape) != rank:
        wanted = {1: "(features,)", 3: "(C, H, W)"}.get(rank, f"rank {rank}")
        raise ShapeError(
            "CG505" if rank == 1 else "CG506",
            f"{kind} needs a {wanted} tensor, got {list(shape)}",
            hint,
        )


def check_positive(
    kind: str, out: Shape, what: str, field: str | None = None, hint: str | None = None
) -> Shape:
    if any(d < 1 for d in out):
        raise ShapeError("CG501", f"{kind} output would be {list(out)}: {what}", hint, field)
    return out


def spatial_axis(dim: int) -> int | None:
    """The spatial axis (0: height, 1: width) a torch `dim` names on a C x H x W tensor, the
    batch counted; None for the channels or the batch."""
    index = dim % 4
    return index - 2 if index >= 2 else None


def torch_dim(kind: str, dim: int, rank: int, field: str = "dim") -> int:
    """Map a torch `dim` (counting the batch dimension) to an index into a per-sample shape."""
    full = rank + 1
    if not -full <= dim < full:
        raise ShapeError(
            "CG512",
            f"{kind}: {field}={dim} is out of range for a tensor of rank {full} (batch included)",
            field=field,
        )
    index = dim % full
    if index == 0:
        raise ShapeError(
            "CG512",
            f"{kind}: {field}={dim} is the batch dimension",
            "dims count the batch: dim=1 is channels",
            field,
        )
    return index - 1
