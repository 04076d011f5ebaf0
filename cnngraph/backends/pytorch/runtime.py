"""What every generated file shares: its header, helper source (make_divisible, the
StochasticDepth module), the statements of each init scheme, and names made safe."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import PurePath

from ... import __version__
from ...expr import float32, make_divisible
from ...ops.base import Call, Op
from ...spec import Init

MAX_LINE = 99


def shown_path(spec_file: str) -> str:
    """The spec's path as the header shows it: as given when relative, else its file name.

    An absolute path names one machine's directories; generated files are committed, and two
    people building the same spec should get the same bytes.
    """
    path = PurePath(spec_file)
    return path.name if path.is_absolute() else spec_file


class GenerationError(Exception):
    """The compiled model has a shape the generated code cannot express."""


def camel(name: str) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    return text if text[0].isalpha() else f"M{text}"


def sanitize(text: str) -> str:
    """Text safe inside a docstring: printable, no quotes or backslashes."""
    return re.sub(r"[^A-Za-z0-9 _.,:;()\[\]+-]", "_", text)[:80]


DEFAULT_STD = 0.01  # of the normal schemes
WEIGHT_INIT: dict[str, list[str]] = {
    "kaiming_normal": ['nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")'],
    "kaiming_normal_fan_in": ['nn.init.kaiming_normal_(m.weight, nonlinearity="relu")'],
    "kaiming_uniform": ['nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")'],
    # gain 1 (torchvision's MnasNet names sigmoid, whose gain torch takes as 1)
    "kaiming_uniform_fan_out_linear": [
        'nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")'
    ],
    "xavier_normal": ["nn.init.xavier_normal_(m.weight)"],
    "xavier_uniform": ["nn.init.xavier_uniform_(m.weight)"],
    "normal": ["nn.init.normal_(m.weight, 0.0, {std})"],
    "trunc_normal": ["nn.init.trunc_normal_(m.weight, mean=0.0, std={std}, a=-2.0, b=2.0)"],
    # fan_out as torch counts it: dim 0 times the receptive field (out_features for linear)
    "uniform_fan_out": [
        "bound = 1.0 / math.sqrt(m.weight.size(0) * m.weight[0][0].numel())",
        "nn.init.uniform_(m.weight, -bound, bound)",
    ],
    "ones": ["if m.weight is not None:", "    nn.init.ones_(m.weight)"],
    "zeros": ["if m.weight is not None:", "    nn.init.zeros_(m.weight)"],
    "keep": [],
}
BIAS_INIT: dict[str, list[str]] = {
    "zeros": ["if m.bias is not None:", "    nn.init.zeros_(m.bias)"],
    "keep": [],
}


def class_argument(names: list[str]) -> str:
    """An isinstance() class argument: one class, or a tuple of them."""
    return names[0] if len(names) == 1 else f"({', '.join(names)})"


def rule_set_names(rules: list[Init]) -> list[str]:
    """Names for the sets of layers that have their own rule: `normal_layers`; with the bias's
    scheme, then the std, where that is what sets two rules apart (`normal_keep_layers`)."""
    names = []
    for rule in rules:
        parts = [rule.weight]
        if sum(r.weight == rule.weight for r in rules) > 1:
            parts.append(rule.bias)
        if sum(r[:2] == rule[:2] for r in rules) > 1:
            parts.append(f"std{rule.std if rule.std is not None else DEFAULT_STD:g}")
        names.append(re.sub(r"\W", "_", "_".join(parts)) + "_layers")
    return names


def example_call(cls: type[Op]) -> Call | None:
    """An op kind's torch call at its first example: which torch class its layers are."""
    fields, shapes = cls.examples[0]
    return cls.model_validate(fields).torch_call(shapes)


def init_lines(rule: Init) -> list[str]:
    """The statements giving module `m` its initial weights and biases."""
    if rule.is_default:
        return ["m.reset_parameters()"]  # torch's own init, weights and biases together
    std = rule.std if rule.std is not None else DEFAULT_STD
    weights = [line.replace("{std}", repr(std)) for line in WEIGHT_INIT[rule.weight]]
    return [*weights, *BIAS_INIT[rule.bias]]


# the compiler's own function, so the file computes channel counts as the compiler does
MAKE_DIVISIBLE = inspect.getsource(make_divisible)
FLOAT32 = inspect.getsource(float32)


def helper_sources(needs: set[str]) -> list[str]:
    """The compiler's own functions that the file's expressions call."""
    return [MAKE_DIVISIBLE] * ("make_divisible" in needs) + [FLOAT32] * ("float32" in needs)


STOCHASTIC_DEPTH = '''class StochasticDepth(nn.Module):
    """Drop path: in training, zero a residual branch for a random part of the batch (mode
    "row": per sample; "batch": all or nothing) and rescale the rest by 1 / (1 - p)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise
'''


def header(model_name: str, spec_file: str, needs: set[str], settings: str = "") -> str:
    """The file's opening comment, docstring and imports; `settings` are what the build was
    given over the spec (`--set`, `--input`)."""
    origin = (
        f"{model_name!r}, generated by `cnngraph build` from"
        f" {shown_path(spec_file)!r} (cnngraph {__version__})."
    )
    lines = [
        # A long path moves to a line of its own, kept whole so that it can be copied.
        *textwrap.wrap(
            origin,
            MAX_LINE,
            initial_indent="# ",
            subsequent_indent="# ",
            break_long_words=False,
            break_on_hyphens=False,
        ),
        *textwrap.wrap(
            f"Built with {settings}: the defaults below are those." if settings else "",
            MAX_LINE,
            initial_indent="# ",
            subsequent_indent="# ",
        ),
        "# Edit the spec and build again rather than this file.",
        f'"""{camel(model_name)}: a torch module built from a cnngraph spec."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    modules = {"math": "math", "struct": "float32"}  # imported where these are used
    stdlib = [f"import {module}" for module, user in modules.items() if user in needs]
    if "Callable" in needs or "Sequence" in needs:
        names = ", ".join(n for n in ("Callable", "Sequence") if n in needs)
        stdlib.append(f"from collections.abc import {names}")
    typing = [n for n in ("Any", "NamedTuple") if n in needs]
    if typing:
        stdlib.append(f"from typing import {', '.join(typing)}")
    if stdlib:
        lines += [*stdlib, ""]
    lines += ["import torch", "from torch import nn", ""]
    return "\n".join(lines)
