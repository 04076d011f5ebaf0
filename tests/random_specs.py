"""Random valid-looking specs, for tests that compare two ways of getting one answer."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


@st.composite
def random_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid-looking specs: convolutions of every kind, pools, residual, concat and
    squeeze-excitation blocks. Channel counts are tracked so that groups divide them."""
    channels = first = draw(st.integers(1, 8))
    size = [draw(st.integers(6, 24)), draw(st.integers(6, 24))]
    layers: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "pool", "tconv", "res", "cat", "se", "norm"]))
        if kind == "conv":
            out = draw(st.integers(1, 12))
            groups = draw(
                st.sampled_from([g for g in (1, 2, 3) if out % g == 0 and channels % g == 0])
            )
            layers[f"c{i}"] = {
                "op": "conv2d",
                "out_channels": out,
                "groups": groups,
                "kernel_size": [draw(st.integers(1, 4)), draw(st.integers(1, 4))],
                "stride": draw(st.integers(1, 2)),
                "padding": draw(st.integers(0, 2)),
                "dilation": draw(st.integers(1, 2)),
                "bias": draw(st.booleans()),
            }
            channels = out
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            layers[f"p{i}"] = {
                "op": draw(st.sampled_from(["max_pool2d", "avg_pool2d"])),
                "kernel_size": k,
                "stride": draw(st.integers(1, 3)),
                "padding": draw(st.integers(0, k // 2)),
                "ceil_mode": draw(st.booleans()),
            }
        elif kind == "tconv":
            stride = draw(st.integers(1, 3))
            layers[f"t{i}"] = {
                "op": "conv_transpose2d",
                "out_channels": draw(st.integers(1, 6)),
                "kernel_size": draw(st.integers(1, 4)),
                "stride": stride,
                "padding": draw(st.integers(0, 1)),
                "output_padding": draw(st.integers(0, stride - 1)),
            }
            channels = layers[f"t{i}"]["out_channels"]
        elif kind == "res":
            out = draw(st.integers(1, 8))
            layers[f"r{i}"] = {"block": "res", "out": out, "stride": draw(st.integers(1, 2))}
            channels = out
        elif kind == "cat":
            a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
            layers[f"k{i}"] = {"block": "cat", "a": a, "b": b}
            channels = a + b
        elif kind == "se":
            layers[f"s{i}"] = {"block": "se"}
        else:
            layers[f"n{i}"] = {"op": "batch_norm2d"}
            layers[f"a{i}"] = {"op": draw(st.sampled_from(["relu", "hardswish", "silu"]))}
    return {
        "cnngraph": 1,
        "name": "random",
        "input": [first, *size],
        "blocks": RANDOM_BLOCKS,
        "layers": layers,
    }


RANDOM_BLOCKS = {
    "res": {
        "params": {"out": "int", "stride": 1},
        "layers": {
            "conv1": {
                "op": "conv2d",
                "out_channels": "$out",
                "kernel_size": 3,
                "stride": "$stride",
                "padding": 1,
                "bias": False,
            },
            "bn1": "batch_norm2d",
            "relu": "relu",
            "conv2": {"op": "conv2d", "out_channels": "$out", "kernel_size": 3, "padding": 1},
        },
        "residual": {"projection": "shortcut"},
    },
    "cat": {
        "params": {"a": "int", "b": "int"},
        "branches": {
            "left": {"op": "conv2d", "out_channels": "$a", "kernel_size": 1},
            "right": [
                {"op": "conv2d", "out_channels": "$b", "kernel_size": 3, "padding": 1},
                "relu",
            ],
        },
        "merge": "concat",
    },
    "se": {
        "layers": {
            "pool": {"op": "adaptive_avg_pool2d", "output_size": 1},
            "fc1": {
                "op": "conv2d",
                "out_channels": "${max(1, in_channels // 2)}",
                "kernel_size": 1,
            },
            "act": "relu",
            "fc2": {"op": "conv2d", "out_channels": "$in_channels", "kernel_size": 1},
            "gate_act": "hardsigmoid",
        },
        "gate": True,
    },
}
