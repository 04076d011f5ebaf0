"""The spec language's constructs, checked against torch modules written independently."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torchvision
import yaml
from torchvision.models.mobilenetv2 import InvertedResidual

import cnngraph

from .conftest import assert_same_layout

MOBILENET_BLOCKS = """
cnngraph: 1
name: blocks
input: [{c}, 16, 16]
params: {{out: {out}, stride: {stride}, t: {t}}}
blocks:
  cna:                              # torchvision's Conv2dNormActivation, ReLU6
    params: {{out: int, k: 1, stride: 1, groups: 1}}
    layers:
      - {{op: conv2d, out_channels: $out, kernel_size: $k, stride: $stride,
         padding: "${{(k - 1) // 2}}", groups: $groups, bias: false}}
      - batch_norm2d
      - {{op: relu6, inplace: true}}
  inverted_residual:                # MobileNetV2, Table 1
    params: {{out: int, stride: 1, t: 6, hidden: "${{int(round(in_channels * t))}}"}}
    layers:
      conv:
        - {{block: cna, out: $hidden, if: "${{t != 1}}"}}
        - {{block: cna, out: $hidden, k: 3, stride: $stride, groups: $hidden}}
        - {{op: conv2d, out_channels: $out, kernel_size: 1, bias: false}}
        - batch_norm2d
    residual: {{when: "${{stride == 1 and in_channels == out}}"}}
layers:
  block: {{block: inverted_residual, out: $out, stride: $stride, t: $t}}
"""


@pytest.mark.parametrize(
    ("c", "out", "stride", "t"),
    [(16, 24, 2, 6), (24, 24, 1, 6), (32, 16, 1, 1), (32, 32, 1, 1), (24, 24, 2, 6)],
)
def test_inverted_residual_matches_torchvision(c: int, out: int, stride: int, t: int) -> None:
    model = cnngraph.load(MOBILENET_BLOCKS.format(c=c, out=out, stride=stride, t=t))
    reference = InvertedResidual(c, out, stride, t)
    assert_same_layout(model, reference, prefix="block.")
    assert model.params == sum(p.numel() for p in reference.parameters())
    # With stride 2 the condition is false before in_channels is known: no add node at all.
    adds = [layer for layer in model.layers if layer.name == "block.add"]
    assert any(layer.active for layer in adds) == reference.use_res_connect


SE = """
cnngraph: 1
name: se
input: [48, 7, 7]
blocks:
  se:                               # Hu et al. 2018: squeeze, excite, scale the input
    params: {squeeze: int}
    layers:
      avgpool: {op: adaptive_avg_pool2d, output_size: 1}
      fc1: {op: conv2d, out_channels: $squeeze, kernel_size: 1}
      activation: relu
      fc2: {op: conv2d, out_channels: $in_channels, kernel_size: 1}
      scale_activation: sigmoid
    gate: true
layers:
  se: {block: se, squeeze: "${max(1, in_channels // 4)}"}
"""


def test_squeeze_excitation_matches_torchvision() -> None:
    model = cnngraph.load(SE)
    reference = torchvision.ops.SqueezeExcitation(48, 12)
    assert_same_layout(model, reference, prefix="se.")
    assert model.output_shape == (48, 7, 7)
    assert model.layer("se.gate").inputs == ("input", "se.scale_activation")
    assert model.layer("se.scale_activation").shape == (48, 1, 1)


def test_json_and_yaml_specs_are_the_same(tmp_path: Any) -> None:
    data = yaml.safe_load(SE)
    path = tmp_path / "se.json"
    path.write_text(json.dumps(data, indent="\t"))
    from_json, from_yaml = cnngraph.load(path), cnngraph.load(SE)
    assert from_json.to_dict() == from_yaml.to_dict()
    assert cnngraph.load(data).params == from_yaml.params


def test_per_repeat_values_carry_on() -> None:
    model = cnngraph.load("""
cnngraph: 1
name: t
input: [8, 64, 64]
blocks:
  conv:
    params: {stride: 1}
    layers: {c: {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1, stride: $stride}}
layers:
  stage: {block: conv, repeat: 4, stride: [2, 1]}
""")
    assert [model.layer(f"stage.{i}.c").shape for i in range(4)] == [(8, 32, 32)] * 4


PER_REPEAT = """
cnngraph: 1
name: t
input: [8, 64, 64]
params: {s: 2, n: 1}
blocks:
  conv:
    params: {stride: 1}
    layers: {c: {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1, stride: $stride}}
layers:
  stage: {block: conv, repeat: REPEAT, stride: STRIDE}
"""


@pytest.mark.parametrize("stride", ["[$s, 1]", '"${[s, 1]}"'])
@pytest.mark.parametrize("n", [1, 3])
def test_a_count_from_params_takes_the_first_values_of_a_list(stride: str, n: int) -> None:
    """`[$s, 1]` reads "the first, then the rest": a stage of one block takes the first; the
    list written as an expression is the same list."""
    text = PER_REPEAT.replace("REPEAT", "$n").replace("STRIDE", stride)
    model = cnngraph.load(text, params={"n": n})
    assert [model.layer(f"stage.{i}.c").shape for i in range(n)] == [(8, 32, 32)] * n
    module = model.to_module()  # the generated file selects per repeat alike
    assert tuple(module(torch.zeros(1, 8, 64, 64)).shape[1:]) == (8, 32, 32)


def test_a_literal_count_takes_no_surplus_values() -> None:
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(PER_REPEAT.replace("REPEAT", "1").replace("STRIDE", '"${[s, 1]}"'))
    assert [d.code for d in info.value.diagnostics] == ["CG306"]


def test_a_list_valued_name_is_not_a_value_per_repeat() -> None:
    """Only a list written out (in YAML or as `${[...]}`) is read per repeat."""
    text = PER_REPEAT.replace("REPEAT", "2").replace("STRIDE", "$strides")
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text.replace("{s: 2, n: 1}", "{strides: [2, 1]}"))
    first = info.value.diagnostics[0]
    assert first.code == "CG307" and "declared int, given a value of type list" in first.message


def test_a_repeat_in_a_list_spreads_into_consecutive_layers() -> None:
    model = cnngraph.load("""
cnngraph: 1
name: t
input: [8, 64, 64]
blocks:
  conv:
    params: {stride: 1}
    layers: {c: {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1, stride: $stride}}
layers:
  features:
    - relu
    - {block: conv, repeat: 3, stride: [2, 1]}
    - {op: max_pool2d, kernel_size: 2, repeat: 2}
    - [{block: conv, repeat: 2}]      # a nested list keeps its copies together
  named: {block: conv, repeat: 2}     # so does a named entry
""")
    names = [layer.name for layer in model.layers if layer.op is not None]
    assert names == [
        "features.0",
        "features.1.c",
        "features.2.c",
        "features.3.c",
        "features.4",
        "features.5",
        "features.6.0.c",
        "features.6.1.c",
        "named.0.c",
        "named.1.c",
    ]
    assert model.layer("features.1.c").shape == (8, 32, 32)
    assert model.layer("features.3.c").shape == (8, 32, 32)
    assert model.output_shape == (8, 8, 8)
    module = model.to_module()
    assert isinstance(module.features[6], torch.nn.Sequential)


def test_branches_joined_by_add_and_block_output_and_then() -> None:
    model = cnngraph.load(
        """
cnngraph: 1
name: t
input: [4, 8, 8]
blocks:
  two_paths:
    branches:
      left: {op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
      right: [{op: conv2d, out_channels: 4, kernel_size: 1}, relu]
    merge: add
    then: {act: sigmoid, extra: tanh}
    output: act
layers:
  b: two_paths_call
""".replace("two_paths_call", "{block: two_paths}")
    )
    assert [layer.name for layer in model.layers] == [
        "b.left",
        "b.right.0",
        "b.right.1",
        "b.add",
        "b.act",
        "b.extra",
    ]
    assert model.layer("b.add").inputs == ("b.left", "b.right.1")
    assert model.graph.outputs == {"output": "b.act"}
    assert [w.code for w in model.warnings] == ["CG404"]  # `extra` is never used


def test_multi_input_block_and_dotted_references() -> None:
    model = cnngraph.load("""
cnngraph: 1
name: t
input: [3, 32, 32]
blocks:
  up:
    inputs: [x, skip]
    layers:
      up: {op: conv_transpose2d, out_channels: 8, kernel_size: 2, stride: 2}
      cat: {op: concat, from: [skip, up]}
layers:
  enc: [{op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}, relu]
  down: {op: max_pool2d, kernel_size: 2}
  mid: {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  dec: {block: up, from: [mid, enc.1]}
""")
    assert model.output_shape == (16, 32, 32)
    assert model.layer("dec.cat").inputs == ("enc.1", "dec.up")


def test_switches_params_and_expressions() -> None:
    text = """
cnngraph: 1
name: t
input: [3, $size, $size]
params: {size: 32, act: relu, head: true, width: 8, wide: "${width * 2}"}
blocks:
  plain: {layers: [{op: conv2d, out_channels: $wide, kernel_size: 1}]}
defaults: &conv {op: conv2d, kernel_size: 3, padding: 1}
layers:
  c1: {<<: *conv, out_channels: $width}
  a1: {op: $act}
  b1: {block: plain}
  pool: {op: adaptive_avg_pool2d, output_size: 1, if: $head}
  flat: {op: flatten, if: $head}
  fc: {op: linear, out_features: 10, if: $head}
outputs: [fc, b1]
""".replace("defaults: &conv", "x-defaults: &conv")
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text)  # x-defaults is not a spec field
    assert info.value.diagnostics[0].code == "CG201"
    text = text.replace("x-defaults: &conv {op: conv2d, kernel_size: 3, padding: 1}\n", "")
    text = text.replace(
        "{<<: *conv, out_channels: $width}",
        "{op: conv2d, kernel_size: 3, padding: 1, out_channels: $width}",
    )
    model = cnngraph.load(text)
    assert model.output_shape == {"fc": (10,), "b1": (16, 32, 32)}
    assert model.layer("a1").kind == "relu"
    small = cnngraph.load(text, params={"head": False, "size": 8, "act": "gelu", "width": 2})
    assert small.output_shape == (4, 8, 8)  # the head is gone; b1 is the one output left
    assert small.layer("a1").kind == "gelu"


def test_yaml_merge_keys() -> None:
    model = cnngraph.load("""
cnngraph: 1
name: t
input: [3, 8, 8]
layers:
  a: &conv {op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  b: {<<: *conv, out_channels: 6}
""")
    assert model.output_shape == (6, 8, 8)


def test_model_repr_and_summary() -> None:
    model = cnngraph.load(SE)
    assert "48" in repr(model)
    text = model.summary(depth=None)
    assert "se.gate" in text and "mul" in text
    assert "Input sizes:   H, W >= 1" in text


PAIRS = """
cnngraph: 1
name: t
input: [4, 17, 17]
blocks:
  conv:                             # Inception-v3's factorized convolutions: 1x7, then 7x1
    params:
      out: int
      k: {type: pair, default: 3}
      pad: ${[(k[0] - 1) // 2, (k[1] - 1) // 2]}
    layers:
      c: {op: conv2d, out_channels: $out, kernel_size: $k, padding: $pad}
layers:
  a: {block: conv, out: 8, k: [1, 7]}
  b: {block: conv, out: 8, k: [7, 1]}
  c: {block: conv, out: 8}
  d: {block: conv, out: 8, k: 5, repeat: 2}
"""


def test_pair_params_take_an_int_or_a_pair() -> None:
    model = cnngraph.load(PAIRS)
    assert model.layer("a.c").shape == model.layer("d.1.c").shape == (8, 17, 17)
    assert model.layer("a.c").op.kernel_size == (1, 7)  # type: ignore[union-attr]
    assert model.layer("c.c").op.padding == (1, 1)  # type: ignore[union-attr]
    module = check_built(model)
    assert module.a.c.kernel_size == (1, 7) and module.b.c.padding == (3, 0)
    assert module.d[1].c.kernel_size == (5, 5)


def test_a_wrong_pair_is_one_error_at_its_declaration() -> None:
    text = PAIRS.replace("k: {type: pair, default: 3}", "k: 3")
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text)
    # (the padding, computed as of a pair, is an error of its own where k is an int)
    [error] = [d for d in info.value.diagnostics if d.code == "CG307"]
    assert error.code == "CG307" and "declared int, given a value of type list" in error.message
    assert "the same error at 1 more place(s)" in error.notes[0]
    assert "{type: pair, default: 3}" in (error.hint or "")
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(PAIRS.replace("k: [7, 1]", "k: [7, 1, 1]"))
    [error] = info.value.diagnostics
    assert "declared pair, given a value of type list" in error.message


def check_built(model: cnngraph.Model) -> torch.nn.Module:
    """The generated module, its output the inferred shape."""
    module = model.to_module()
    out = module(torch.zeros(1, *model.input_shape))
    assert tuple(out.shape[1:]) == model.output_shape
    return module


def test_a_param_with_choices_takes_only_those() -> None:
    path = "specs/squeezenet.yaml"
    assert cnngraph.load(path, params={"version": 1.1}).params == 1_235_496
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(path, params={"version": 1.2})
    [error] = info.value.diagnostics
    assert error.code == "CG307" and "1.2, not one of its choices" in error.message
    assert error.hint == "choices: 1.0, 1.1"
    built = type(cnngraph.load(path).to_module())  # the generated file checks them too
    with pytest.raises(ValueError, match="version must be one of"):
        built(version=1.2)
