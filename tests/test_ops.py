"""Registry-wide: every op's examples build in torch from the op's own emitted constructor, and
shape, parameter count and MACs equal what torch measures. A new op gets these tests for free."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnngraph.ops import OPS, Shape

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
