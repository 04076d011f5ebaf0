"""Registry-wide: every op's examples build in torch from the op's own emitted constructor, and
shape, parameter count and MACs equal what torch measures. A new op gets these tests for free."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnngraph.ops import OPS, Shape, ShapeError

from .conftest import torch_namespace

CASES = [
    pytest.param(kind, fields, shapes, id=f"{kind}-{i}")
    for kind, cls in OPS.items()
    for i, (fields, shapes) in enumerate(cls.examples)
]


def test_every_op_has_examples() -> None:
    assert [kind for kind, cls in OPS.items() if not cls.examples] == []


@pytest.mark.parametrize(("kind", "fields", "shapes"), CASES)
def test_op_agrees_with_torch(kind: str, fields: dict[str, Any], shapes: list[Shape]) -> None:
    op = OPS[kind].model_validate(fields)
    out = op.infer(shapes)
    namespace = torch_namespace()
    source = op.torch_module(shapes)
    module = eval(source, namespace) if source else None  # the op's own emitted source
    if module is not None:
        module.eval()
    args = {f"x{i}": torch.randn(2, *shape) for i, shape in enumerate(shapes)}
    expression = op.torch_forward("module", list(args))
    with FlopCounterMode(display=False) as counter:
        result = eval(expression, {**namespace, **args, "module": module})

    assert tuple(result.shape) == (2, *out)
    torch_params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    assert op.count_params(shapes, out) == torch_params
    assert op.count_macs(shapes, out) == counter.get_total_flops() // 2 // 2  # FLOPs/2, batch 2
    assert op.label(shapes).startswith(kind)


@pytest.mark.parametrize("kind", sorted(OPS))
def test_op_schema_builds(kind: str) -> None:
    schema = OPS[kind].model_json_schema()
    assert schema["type"] == "object"
    assert schema.get("additionalProperties") is False


@pytest.mark.parametrize("kind", sorted(OPS))
def test_unknown_fields_are_refused(kind: str) -> None:
    from pydantic import ValidationError

    fields, _ = OPS[kind].examples[0]
    with pytest.raises(ValidationError):
        OPS[kind].model_validate({**fields, "no_such_field": 1})


def test_channel_shuffle_is_torchs() -> None:
    """The emitted expression moves each value where nn.ChannelShuffle does."""
    x = torch.randn(2, 12, 3, 3)
    for groups in (2, 3, 4):
        op = OPS["channel_shuffle"].model_validate({"groups": groups})
        ours = eval(op.torch_forward("", ["x"]), {"torch": torch, "x": x})
        assert torch.equal(ours, torch.nn.ChannelShuffle(groups)(x))


def test_chunks_are_torchs_pieces() -> None:
    x = torch.randn(2, 12, 4, 6)
    for chunks, dim in ((2, 1), (3, 1), (2, 3), (4, -2)):
        for index in range(chunks):
            op = OPS["chunk"].model_validate({"chunks": chunks, "index": index, "dim": dim})
            ours = eval(op.torch_forward("", ["x"]), {"torch": torch, "x": x})
            assert torch.equal(ours, torch.chunk(x, chunks, dim=dim)[index])


def test_unflatten_and_reshape_are_torchs() -> None:
    x = torch.randn(2, 24)
    unflatten = OPS["unflatten"].model_validate({"sizes": [2, -1, 3]})
    namespace = {"torch": torch, "x": x}
    assert torch.equal(eval(unflatten.torch_forward("", ["x"]), namespace), x.view(2, 2, 4, 3))
    reshape = OPS["reshape"].model_validate({"shape": [4, 6]})
    assert torch.equal(eval(reshape.torch_forward("", ["x"]), namespace), x.view(2, 4, 6))


def _size_map_agrees_with_infer(op: Any, shapes: list[Shape]) -> int:
    """Each axis's size map and least size against the op's own shape rule (itself checked
    against torch above) at sizes 1..40; how many axes have a map."""
    mapped = 0
    for axis in (0, 1):
        rule = op.size_map(axis)
        if rule is None:
            continue
        mapped += 1
        size, least = rule
        for n in range(1, 41):
            shape = list(shapes[0])
            shape[axis + 1] = n
            try:
                out = op.infer([tuple(shape), *shapes[1:]])
            except ShapeError:
                out = None
            assert (out is not None) == (n >= least), (axis, n, least)
            if out is not None:
                assert out[axis + 1] == size(n), (axis, n)
    return mapped


@pytest.mark.parametrize(("kind", "fields", "shapes"), CASES)
def test_size_maps_agree_with_the_shape_rule(
    kind: str, fields: dict[str, Any], shapes: list[Shape]
) -> None:
    op = OPS[kind].model_validate(fields)
    if len(shapes) == 1 and len(shapes[0]) == 3:
        _size_map_agrees_with_infer(op, shapes)


@pytest.mark.parametrize("kind", ["conv2d", "max_pool2d", "avg_pool2d", "conv_transpose2d"])
def test_window_size_maps_over_a_grid_of_fields(kind: str) -> None:
    """Kernels, strides, paddings, dilations, ceil mode and padding modes: a map wherever the
    rule has that form (ceil mode's dropped last window has none), and always the exact one."""
    grid = itertools.product(range(1, 6), range(1, 4), range(0, 3), (1, 2), (False, True))
    mapped = 0
    for k, s, p, d, flag in grid:
        fields: dict[str, Any] = {"kernel_size": [k, 3], "stride": [s, 1], "padding": [p, 1]}
        if kind == "conv2d":
            fields.update(out_channels=2, dilation=[d, 1])
            fields["padding_mode"] = "reflect" if flag else "zeros"
        elif kind == "conv_transpose2d":
            fields.update(out_channels=2, dilation=[d, 1], output_padding=[min(p, s - 1), 0])
        elif kind == "max_pool2d":
            fields.update(dilation=[d, 1], ceil_mode=flag)
        else:
            fields.update(ceil_mode=flag)
        try:
            op = OPS[kind].model_validate(fields)
            op.infer([(2, 40, 9)])
        except (ValueError, ShapeError):
            continue  # fields torch refuses (padding over half the kernel, ...)
        mapped += _size_map_agrees_with_infer(op, [(2, 9, 9)])
    assert mapped > 100
