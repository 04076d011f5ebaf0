"""Which input sizes compile: the rules agree with trying every size, and with torch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnngraph
from cnngraph.errors import Diagnostics
from cnngraph.passes.infer import ShapeInference
from cnngraph.passes.sizes import LINEAR_SCAN, _first_valid, input_size_rules

from .conftest import SPECS
from .random_specs import random_specs

UNET = """
cnngraph: 1
name: tiny-unet
input: [1, 64, 64]
blocks:
  double:
    params: {c: int}
    layers:
      - {op: conv2d, out_channels: $c, kernel_size: 3, padding: 1}
      - {op: relu}
      - {op: conv2d, out_channels: $c, kernel_size: 3, padding: 1}
      - {op: relu}
layers:
  enc1:  {block: double, c: 8}
  down1: {op: max_pool2d, kernel_size: 2}
  enc2:  {block: double, c: 16}
  down2: {op: max_pool2d, kernel_size: 2}
  mid:   {block: double, c: 32}
  up2:   {op: conv_transpose2d, out_channels: 16, kernel_size: 2, stride: 2}
  cat2:  {op: concat, from: [enc2, up2]}
  dec2:  {block: double, c: 16}
  up1:   {op: conv_transpose2d, out_channels: 8, kernel_size: 2, stride: 2}
  cat1:  {op: concat, from: [enc1, up1]}
  dec1:  {block: double, c: 8}
  head:  {op: conv2d, out_channels: 2, kernel_size: 1}
"""


def test_unet_needs_a_multiple_of_four() -> None:
    model = cnngraph.load(UNET)
    rules = model.input_size_rules
    assert rules is not None
    h, w = rules
    assert (h.minimum, h.step, h.residues) == (4, 4, (0,))
    assert h.describe() == "H >= 4, a multiple of 4"
    for n in range(1, 150):
        assert h.accepts(n) == model.accepts(n, 64), n
        assert w.accepts(n) == model.accepts(64, n), n


def test_asymmetric_model_gets_separate_rules() -> None:
    text = UNET.replace(
        "down1: {op: max_pool2d, kernel_size: 2}", "down1: {op: max_pool2d, kernel_size: [2, 1]}"
    ).replace(
        "up1:   {op: conv_transpose2d, out_channels: 8, kernel_size: 2, stride: 2}",
        "up1:   {op: conv_transpose2d, out_channels: 8, kernel_size: [2, 1], stride: [2, 1]}",
    )
    model = cnngraph.load(text)
    rules = model.input_size_rules
    assert rules is not None
    assert (rules[0].step, rules[1].step) == (4, 2)
    for n in range(1, 80):
        assert rules[0].accepts(n) == model.accepts(n, 64)
        assert rules[1].accepts(n) == model.accepts(64, n)


@pytest.mark.parametrize(
    ("file", "minimum"), [("resnet18.yaml", 1), ("resnet.yaml", 1), ("googlenet.yaml", 15)]
)
def test_minimum_sizes_of_the_specs(file: str, minimum: int) -> None:
    """torchvision publishes min_size (1 for ResNets, 15 for GoogLeNet)."""
    model = cnngraph.load(SPECS / file)
    rules = model.input_size_rules
    assert rules is not None
    assert rules[0].minimum == rules[1].minimum == minimum
    assert rules[0].step == 1
    assert not model.accepts(minimum - 1, minimum) or minimum == 1


def test_flat_inputs_have_no_size_rule() -> None:
    model = cnngraph.load(
        "cnngraph: 1\nname: mlp\ninput: [784]\nlayers:\n  fc: {op: linear, out_features: 10}\n"
    )
    assert model.input_size_rules is None
    assert "fixed" in model.summary()


@pytest.mark.parametrize(
    ("source", "shape", "code", "note"),
    [
        (SPECS / "googlenet.yaml", (3, 8, 8), "CG501", "H, W >= 15"),
        (UNET, (1, 66, 66), "CG504", "H, W >= 4, a multiple of 4"),
        (UNET, (1, 64, 66), "CG504", "H, W >= 4, a multiple of 4"),
    ],
)
def test_size_errors_say_which_sizes_compile(
    source: object, shape: tuple[int, ...], code: str, note: str
) -> None:
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(source, input_shape=shape)  # type: ignore[arg-type]
    first = next(d for d in info.value.diagnostics if d.code == code)
    assert f"the model compiles for input sizes {note}" in first.notes


def test_errors_unrelated_to_size_get_no_size_note() -> None:
    text = UNET.replace("kernel_size: 1}", "kernel_size: 1, groups: 3}")
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text)
    assert [d.notes for d in info.value.diagnostics if d.code == "CG502"] == [()]


@settings(max_examples=300, deadline=None)
@given(
    period=st.sampled_from([1, 2, 4, 8, 32, 64]),
    shorter=st.integers(0, 3),
    residues=st.sets(st.integers(0, 63), min_size=1),
    minimum=st.integers(1, 1 << 25) | st.integers(1, 3 * LINEAR_SCAN),
    end=st.sampled_from([512, 5000, 1 << 25]),
)
def test_the_bounded_search_finds_the_first_valid_size(
    period: int, shorter: int, residues: set[int], minimum: int, end: int
) -> None:
    """Past the linear scan, a binary search: the same answer as trying every size, in a
    logarithmic number of tries, for sets of the shape valid sizes have (valid sizes repeat
    with a period up to the bound the search is given: 3 where it is told 4)."""
    true_period = max(1, period - shorter)
    tried: list[int] = []

    def test(n: int) -> bool:
        tried.append(n)
        return n >= minimum and n % true_period in {r % true_period for r in residues}

    first = next((n for n in range(minimum, min(end, minimum + period) + 1) if test(n)), None)
    tried.clear()
    assert _first_valid(test, end, period) == first
    assert len(tried) <= LINEAR_SCAN + period * (end.bit_length() + 2)


def test_a_huge_input_or_kernel_is_analysed_quickly() -> None:
    """An 8-gigapixel input whose model fails at every size, and a 60,000-pixel pool window,
    each take a few hundred shape inferences (they took hundreds of thousands)."""
    flat = "cnngraph: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n  fc: {op: linear, out_features: 2}\n"
    with pytest.raises(cnngraph.SpecError):
        cnngraph.load(flat, input_shape=(1, 90_000, 90_000))
    pool = "cnngraph: 1\nname: t\ninput: [1, 60000, 60000]\nlayers:\n"
    pool += "  p: {op: max_pool2d, kernel_size: 59999, stride: 3}\n"
    rules = cnngraph.load(pool).input_size_rules
    assert rules is not None and rules[0].describe() == "H >= 59999"


def test_size_scans_evaluate_channel_expressions_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An expression reading in_channels is evaluated again only when a channel count it
    read changes, not for each of the sizes a scan tries."""
    from cnngraph.passes import infer

    calls: list[str] = []
    real = infer.evaluate

    def counting(text: str, *args: object, **kwargs: object) -> object:
        calls.append(text)
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(infer, "evaluate", counting)
    text = UNET.replace(
        "out_channels: 16, kernel_size: 2", 'out_channels: "${in_channels * 16}", kernel_size: 2'
    )
    model = cnngraph.load(text)
    assert model.input_size_rules is not None
    assert 0 < len(calls) <= 2


def _fully_inferred(model: cnngraph.Model, shape: tuple[int, ...]) -> bool:
    """Whether full inference, from scratch and with its diagnostics, compiles `shape`."""
    diags = Diagnostics(max_errors=None)
    ShapeInference(model.graph).run(shape, diags)
    return not diags.has_errors


def _agrees_with_full_inference(model: cnngraph.Model, sizes: int) -> None:
    """The oracle: full shape inference with its diagnostics, from scratch, at every size;
    the rules and `accepts` (memoised, and cut short where walks meet) must agree with it."""
    rules = model.input_size_rules
    assert rules is not None
    # derived from the ops' size maps where they allow, the rules are what trying gives
    scanned = input_size_rules(model._eval_inference, model.input_shape, derive=False)
    assert scanned is not None
    assert [r.as_tuple()[:3] for r in rules] == [r.as_tuple()[:3] for r in scanned]
    c, h, w = model.input_shape
    for n in range(1, sizes + 1):
        for axis, shape in ((0, (c, n, w)), (1, (c, h, n))):
            compiles = _fully_inferred(model, shape)
            assert rules[axis].accepts(n) == compiles, (axis, n)
            assert model.accepts(*shape[1:]) == compiles, shape


@pytest.mark.parametrize("file", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_size_rules_of_every_spec_equal_trying_every_size(file: str) -> None:
    model = cnngraph.load(SPECS / file)
    if model.input_size_rules is None:  # flat inputs
        return
    _agrees_with_full_inference(model, 40)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=random_specs(), copies=st.integers(1, 4))
def test_size_rules_of_random_specs_equal_trying_every_size(
    spec: dict[str, Any], copies: int
) -> None:
    """Random specs, their block calls repeated: runs of segments alike, some of them fixed
    points of the sizes (stride 1), some not (stride 2 in every copy)."""
    for entry in spec["layers"].values():
        if "block" in entry:
            entry["repeat"] = copies
    try:
        model = cnngraph.load(spec)
    except cnngraph.SpecError:
        return  # the nominal size does not compile: nothing to compare at it
    _agrees_with_full_inference(model, 60)


def test_a_compiler_keeps_size_lookups_between_variants() -> None:
    """Variants compiled by one Compiler share their size lookups: each variant's rules are
    the ones a compile of its own gives, and agree with full inference."""
    from cnngraph.model import Compiler
    from cnngraph.space import Space

    stages = "[[int(1, 4), log_int(8, 128, 8), choice(1, 2, 8), choice(1.0, 0.5)]] * 4"
    compiler = Compiler(SPECS / "anynet.yaml")
    for index, values in enumerate(Space({}, {"stages": stages}, 25, 2).variants()):
        shared = compiler.load(values, (3, 64, 64))
        alone = cnngraph.load(SPECS / "anynet.yaml", params=values, input_shape=(3, 64, 64))
        assert shared.input_size_rules == alone.input_size_rules
        if index < 3:
            _agrees_with_full_inference(shared, 40)


def test_layers_alike_on_more_channels_may_not_hold_the_same_sizes() -> None:
    """Size lookups share results between segments alike but for their channels; where the
    wider one would hold too many values, it is walked, not assumed (2048 x 2400 x 2400 is
    over the limit on values, 1 x 2400 x 2400 is not)."""
    spec = """
cnngraph: 1
name: wide
input: [1, 64, 64]
layers:
  up1: {op: upsample, scale_factor: 8}
  down1: {op: max_pool2d, kernel_size: 8}
  widen: {op: conv2d, out_channels: 2048, kernel_size: 1}
  up2: {op: upsample, scale_factor: 8}
  down2: {op: max_pool2d, kernel_size: 8}
"""
    model = cnngraph.load(spec)
    for size, compiles in ((200, True), (300, False)):
        assert _fully_inferred(model, (1, size, size)) is compiles
        assert model.accepts(size, size) is compiles


def test_inference_run_again_with_other_channels_starts_its_lookups_afresh() -> None:
    """Lookups by height and width hold for the channels of the last full run."""
    spec = """
cnngraph: 1
name: k
input: [3, 32, 32]
blocks:
  b:
    layers:
      - {op: conv2d, out_channels: 4, kernel_size: "${in_channels}"}
layers:
  r: relu
  c: {block: b}
"""
    model = cnngraph.load(spec)
    inference = ShapeInference(model.graph)
    for channels, size in ((3, 4), (6, 4), (6, 6)):
        inference.run((channels, 32, 32), Diagnostics(max_errors=None))
        shape = (channels, size, size)
        assert inference.compiles(shape) is _fully_inferred(model, shape)


def test_weights_that_follow_the_input_size_bound_the_sizes_too() -> None:
    """A layer_norm over the whole tensor has twice its values as weights: past the limit on
    weights, the size does not compile, in a scan as in a full inference."""
    model = cnngraph.load("cnngraph: 1\nname: n\ninput: [4, 32, 32]\nlayers:\n  n: layer_norm\n")
    for size, compiles in ((20_000, True), (40_000, False)):
        assert _fully_inferred(model, (4, size, size)) is compiles
        assert model.accepts(size, size) is compiles


def test_repeated_blocks_that_shrink_are_walked_every_time() -> None:
    """Identical blocks in a row that each take 2 pixels off (no fixed point of the size):
    five of them need 11 pixels; a block that keeps the size is walked once per size."""
    spec = """
cnngraph: 1
name: shrink
input: [3, 32, 32]
blocks:
  shrink:
    layers:
      - {op: conv2d, out_channels: 4, kernel_size: 3}
      - relu
  keep:
    layers:
      - {op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
      - relu
layers:
  a: {block: keep, repeat: 6}
  s: {block: shrink, repeat: 5}
  b: {block: keep, repeat: 6}
"""
    model = cnngraph.load(spec)
    rules = model.input_size_rules
    assert rules is not None and rules[0].minimum == 11
    _agrees_with_full_inference(model, 40)


@pytest.mark.parametrize(
    "layers",
    [
        "k: {op: chunk, chunks: 2, index: 0, dim: 2}",
        "k: {op: chunk, chunks: 2, index: 0, dim: -1}",
        "a: {op: conv2d, out_channels: 2, kernel_size: 1}\n"
        "  b: {op: concat, from: [a, a], dim: 2}\n"
        "  c: {op: conv2d, out_channels: 2, kernel_size: 3, stride: 2}",
    ],
)
def test_ops_along_one_spatial_dim_get_a_rule_per_axis(layers: str) -> None:
    """A chunk or concat along the height or the width treats them apart: the width's rule is
    not the height's (it was copied: odd widths said to fail, or to compile)."""
    model = cnngraph.load(f"cnngraph: 1\nname: t\ninput: [2, 16, 16]\nlayers:\n  {layers}\n")
    _agrees_with_full_inference(model, 40)
