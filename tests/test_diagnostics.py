"""Every kind of bad input: a SpecError with a stable code, the exact line and column of the
offending text, and a hint; never a traceback."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

import cnngraph
from cnngraph.errors import CODES, Diagnostic

from .conftest import SPECS


def spec(
    layers: str, head: str = "", blocks: str = "", tail: str = "", input_: str = "[3, 32, 32]"
) -> str:
    """A small spec around the given YAML fragments (written at their natural indentation)."""
    parts = ["cnngraph: 1", "name: t", f"input: {input_}", textwrap.dedent(head).strip()]
    if blocks:
        parts += ["blocks:", textwrap.indent(textwrap.dedent(blocks).strip(), "  ")]
    parts += [
        "layers:",
        textwrap.indent(textwrap.dedent(layers).strip(), "  "),
        textwrap.dedent(tail).strip(),
    ]
    return "\n".join(p for p in parts if p) + "\n"


def problems(text: str, **kwargs: Any) -> list[Diagnostic]:
    with pytest.raises(cnngraph.SpecError) as info:
        cnngraph.load(text, **kwargs)
    return info.value.diagnostics


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def expect(
    text: str, code: str, needle: str | None = None, nth: int = 1, **kwargs: Any
) -> Diagnostic:
    """Exactly one diagnostic of `code`, located at `needle` if given."""
    found = [d for d in problems(text, **kwargs) if d.code == code]
    assert len(found) == 1, [f"{d.code} {d.message}" for d in problems(text, **kwargs)]
    d = found[0]
    assert d.code in CODES
    if needle is not None:
        assert (d.location.line, d.location.col) == where(text, needle, nth), d
    return d


# --- reading files ---------------------------------------------------------------------------


def test_malformed_yaml() -> None:
    text = "cnngraph: 1\nname: t\ninput: [3, 8, 8\nlayers: []\n"
    d = expect(text, "CG101")
    assert d.location.line == 4


def test_tab_indentation_gets_a_hint() -> None:
    d = expect("cnngraph: 1\nlayers:\n\t- relu\n", "CG101")
    assert d.hint is not None and "tab" in d.hint


def test_unquoted_expression_in_flow_mapping_gets_a_hint() -> None:
    text = spec("c: {op: conv2d, out_channels: ${4 * 2}, kernel_size: 1}")
    d = expect(text, "CG101")
    assert d.hint is not None and "quote" in d.hint


def test_json_syntax_error(tmp_path: Any) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"cnngraph": 1,\n "name": "t",\n "input": [3, 8, 8],}\n')
    d = expect(str(path), "CG102")
    assert (d.location.line, d.location.col) == (3, 21)


def test_duplicate_key() -> None:
    text = spec("""
        c: {op: conv2d, out_channels: 4, kernel_size: 3}
        c: {op: relu}
    """)
    expect(text, "CG103", "c: {op: relu}")


def test_python_tag_is_refused() -> None:
    text = spec("c: !!python/object/apply:os.system ['echo hi']")
    d = expect(text, "CG104", "!!python")
    assert "python" in d.message


def test_alias_bomb_is_stopped_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    start = time.perf_counter()
    expect("\n".join(lines) + "\n", "CG105")
    assert time.perf_counter() - start < 5


def test_deep_nesting_is_refused_without_crashing() -> None:
    expect("layers: " + "[" * 50_000 + "]" * 50_000 + "\n", "CG105")


def test_non_string_key() -> None:
    expect("cnngraph: 1\n? [a, b]\n: 1\n", "CG106", "[a, b]")


def test_missing_file() -> None:
    d = expect("no/such/spec.yaml", "CG100")
    assert d.location.file == "no/such/spec.yaml"


# --- schema ----------------------------------------------------------------------------------


def test_unknown_field_suggests_the_right_one() -> None:
    text = spec("c: {op: conv2d, out_channels: 4, kernal_size: 3}")
    d = expect(text, "CG201", "kernal_size")
    assert d.hint == "did you mean 'kernel_size'?"


def test_unknown_top_level_field() -> None:
    text = spec("- relu", tail="ouputs: [x]")
    d = expect(text, "CG201", "ouputs")
    assert d.hint == "did you mean 'outputs'?"


def test_wrong_type_points_at_the_value() -> None:
    text = spec("c: {op: conv2d, out_channels: 2.5, kernel_size: 3}")
    d = expect(text, "CG202", "2.5")
    assert "out_channels" in d.message and "integer" in d.message


def test_out_of_range_value() -> None:
    text = spec("c: {op: conv2d, out_channels: 4, kernel_size: 3, padding: -1}")
    expect(text, "CG202", "-1")


def test_missing_field() -> None:
    text = spec("c: {op: conv2d, kernel_size: 3}")
    d = expect(text, "CG203", "{op: conv2d")
    assert "out_channels" in d.message


def test_unknown_op_suggests() -> None:
    text = spec("c: {op: conv2, out_channels: 4, kernel_size: 3}")
    d = expect(text, "CG204", "conv2,")
    assert d.hint == "did you mean 'conv2d'?"


def test_unknown_block() -> None:
    text = spec("b: {block: basik}", blocks="basic: {layers: [relu]}")
    d = expect(text, "CG205", "basik")
    assert d.hint == "did you mean 'basic'?"


@pytest.mark.parametrize("head", ["cnngraph: 2", ""])
def test_format_version(head: str) -> None:
    text = spec("- relu").replace("cnngraph: 1\n", head + "\n" if head else "")
    expect(text, "CG206")


def test_init_schemes_are_checked() -> None:
    d = expect(
        spec("c: {op: conv2d, out_channels: 4, kernel_size: 1, init: kaiming}"), "CG202", "kaiming}"
    )
    assert d.hint == "did you mean 'kaiming_normal'?"
    expect(spec("r: {op: relu, init: zeros}"), "CG202", "init: zeros")
    expect(spec("- relu", head="init: {conv: zeros}"), "CG202", "conv: zeros")


def test_init_rules_with_weight_and_bias_are_checked() -> None:
    conv = "c: {op: conv2d, out_channels: 4, kernel_size: 1, init: %s}"
    d = expect(spec(conv % "{weight: kaiming, bias: keep}"), "CG202", "kaiming,")
    assert d.hint == "did you mean 'kaiming_normal'?"
    d = expect(spec("- relu", head="init: {conv2d: xavier}"), "CG202", "xavier}")
    assert "must be a mapping" in d.message and "InitRule" not in d.message
    d = expect(spec(conv % "{weight: normal, biases: keep}"), "CG201", "biases")
    assert d.hint == "did you mean 'bias'?"
    expect(spec(conv % "{bias: ones}"), "CG202", "ones}")
    expect(spec(conv % "{weight: default}"), "CG202", "default}")  # default is weights and biases
    d = expect(
        spec("- relu", head="init: {linear: {weight: normal, bias: zero}}"), "CG202", "zero}"
    )
    assert "'zeros'" in d.message and "'keep'" in d.message
    expect(spec("- relu", head="init: {linear: {wieght: normal}}"), "CG201", "wieght")


def test_layer_entry_must_be_a_mapping() -> None:
    expect(spec("- 5"), "CG207", "5")


def test_block_needs_a_body() -> None:
    text = spec("b: {block: nothing}", blocks="nothing: {params: {}}")
    d = expect(text, "CG202", "{params: {}}")
    assert "layers" in d.message


# --- expansion and expressions ---------------------------------------------------------------


def test_expression_syntax() -> None:
    text = spec('c: {op: conv2d, out_channels: "${1 +}", kernel_size: 3}')
    expect(text, "CG301", '"${1 +}"')


def test_unknown_name_in_expression() -> None:
    text = spec("c: {op: conv2d, out_channels: $widht, kernel_size: 3}", head="params: {width: 8}")
    d = expect(text, "CG302", "$widht")
    assert d.hint == "did you mean 'width'?"


@pytest.mark.parametrize(
    "expression",
    [
        "${__import__('os').system('true')}",
        "${width.bit_length()}",
        "${(lambda: 1)()}",
        "${open('x')}",
        "${{x for x in [1]}}",
        "${width is 8}",
    ],
)
def test_constructs_outside_the_whitelist(expression: str) -> None:
    text = spec(
        f'c: {{op: conv2d, out_channels: "{expression}", kernel_size: 3}}',
        head="params: {width: 8}",
    )
    expect(text, "CG303", f'"{expression}"')


@pytest.mark.parametrize(
    "expression", ["${1 / 0}", "${9 ** 9 ** 9}", "${[1] * 10**9}", "${max()}", "${[1, 2][5]}"]
)
def test_expression_failures(expression: str) -> None:
    text = spec(f'c: {{op: conv2d, out_channels: "{expression}", kernel_size: 3}}')
    start = time.perf_counter()
    expect(text, "CG304", f'"{expression}"')
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("count", ["100000", "-1", "two", "1.5"])
def test_bad_repeat(count: str) -> None:
    text = spec(f"r: {{op: relu, repeat: {count}}}")
    expect(text, "CG305", count)


def test_per_repeat_list_too_long() -> None:
    text = spec(
        "b: {block: blk, repeat: 2, stride: [2, 1, 1]}",
        blocks="""
        blk:
          params: {stride: 1}
          layers: [{op: conv2d, out_channels: 4, kernel_size: 3, padding: 1, stride: $stride}]
    """,
    )
    expect(text, "CG306", "[2, 1, 1]")


def test_unknown_block_param() -> None:
    text = spec(
        "b: {block: blk, widht: 4}",
        blocks="""
        blk:
          params: {width: 8}
          layers: [{op: conv2d, out_channels: $width, kernel_size: 1}]
    """,
    )
    d = expect(text, "CG307", "widht")
    assert d.hint == "did you mean 'width'?"


def test_wrong_param_type() -> None:
    text = spec(
        "b: {block: blk, width: 2.5}",
        blocks="""
        blk:
          params: {width: int}
          layers: [{op: conv2d, out_channels: $width, kernel_size: 1}]
    """,
    )
    expect(text, "CG307", "2.5")


def test_unknown_override() -> None:
    d = expect(spec("- relu", head="params: {num_classes: 10}"), "CG307", params={"num_clases": 3})
    assert d.hint == "did you mean 'num_classes'?"


def test_blocks_do_not_see_their_callers_params() -> None:
    text = spec(
        "b: {block: outer, width: 4}",
        blocks="""
        outer:
          params: {width: int}
          layers: [{block: inner}]
        inner:
          layers: [{op: conv2d, out_channels: $width, kernel_size: 1}]
    """,
    )
    expect(text, "CG302", "$width, kernel_size: 1}]")


def test_missing_block_param() -> None:
    text = spec(
        "b: {block: blk}",
        blocks="""
        blk:
          params: {width: int}
          layers: [{op: conv2d, out_channels: $width, kernel_size: 1}]
    """,
    )
    d = expect(text, "CG308", "{block: blk}")
    assert "width" in d.message


def test_block_using_itself() -> None:
    text = spec("b: {block: loop}", blocks="loop: {layers: [{block: loop}]}")
    expect(text, "CG309")


def test_repeat_cannot_depend_on_shapes() -> None:
    text = spec("r: {op: relu, repeat: $in_channels}")
    expect(text, "CG310", "$in_channels")


def test_too_many_layers() -> None:
    text = spec(
        "b: {block: wide, repeat: 1000}", blocks="wide: {layers: [{op: relu, repeat: 1000}]}"
    )
    start = time.perf_counter()
    expect(text, "CG311")
    assert time.perf_counter() - start < 10


def test_condition_must_be_boolean() -> None:
    expect(spec("r: {op: relu, if: 3}"), "CG312", "3}")


# --- structure -------------------------------------------------------------------------------


def test_unknown_reference() -> None:
    text = spec("""
        a: {op: relu}
        b: {op: add, from: [a, aa2]}
    """)
    d = expect(text, "CG401", "aa2")
    assert "aa2" in d.message


def test_reference_to_a_switched_off_layer() -> None:
    text = spec("""
        a: {op: relu, if: false}
        b: {op: relu, from: a}
    """)
    d = expect(text, "CG401", "a}")
    assert "switched off" in d.message


def test_duplicate_name_with_the_residual_join() -> None:
    text = spec(
        "b: {block: blk}",
        blocks="""
        blk:
          layers: {add: {op: relu}}
          residual: true
    """,
    )
    expect(text, "CG402", "residual: true")


def test_reserved_name() -> None:
    expect(spec("input: {op: relu}"), "CG402", "input: {op")


def test_cycle() -> None:
    text = spec("""
        a: {op: relu, from: c}
        b: {op: relu}
        c: {op: relu}
    """)
    d = expect(text, "CG403", "a: {op")
    assert "a -> b -> c -> a" in d.message


def test_unused_layer_is_a_warning() -> None:
    text = spec("""
        a: {op: relu}
        dead: {op: sigmoid}
        b: {op: relu, from: a}
    """)
    model = cnngraph.load(text)
    assert [(w.code, w.location.line) for w in model.warnings] == [
        ("CG404", where(text, "dead")[0])
    ]


def test_an_unknown_op_brings_no_knock_on_warnings() -> None:
    """The layers around an entry that failed to expand are not "unused" or "cut off"."""
    text = spec("a: {op: relu}\nb: {op: rleu}\nc: {op: relu}\nd: {op: relu}")
    assert [d.code for d in problems(text)] == ["CG204"]


def test_one_mistake_at_many_call_sites_is_one_error() -> None:
    """A block param given the wrong type at three calls: one error, the other places in a
    note, and a hint that says what to write instead."""
    text = spec(
        "a: {block: b, k: [1, 3]}\nc: {block: b, k: [1, 3]}\nd: {block: b, k: [1, 3]}",
        blocks="b:\n  params: {k: int}\n  layers: [{op: conv2d, out_channels: 4, kernel_size: $k}]",
    )
    d = expect(text, "CG307", "[1, 3]")
    assert d.notes == (
        f"the same error at 2 more place(s): line(s) {where(text, '[1, 3]', 2)[0]}, "
        f"{where(text, '[1, 3]', 3)[0]}",
    )
    assert d.hint is not None and "k: {type: pair, default: 3}" in d.hint  # [1, 3] is a pair
    other = text.replace("[1, 3]", "[1, 3, 5]")
    assert "k: {type: list}" in (expect(other, "CG307", "[1, 3, 5]").hint or "")


def test_unused_layers_are_reported_at_their_dead_ends() -> None:
    """One warning per unused result nothing reads; the count is of the unused layers that
    feed that one alone (`shared` feeds two dead ends: it is counted for neither)."""
    text = spec("""
        a: {op: relu}
        d1: {op: relu, from: a}
        d2: {op: relu}
        end1: {op: relu}
        shared: {op: relu, from: a}
        end2: {op: relu, from: shared}
        end3: {op: relu, from: shared}
        b: {op: relu, from: a}
    """)
    messages = [w.message for w in cnngraph.load(text).warnings]
    assert messages == [
        "the result of 'end1' is never used (nor 2 layer(s) feeding only it)",
        "the result of 'end2' is never used",
        "the result of 'end3' is never used",
    ]


def test_warnings_of_one_code_are_shown_twenty_times() -> None:
    dead = "".join(f"d{i}: {{op: relu, from: a}}\n" for i in range(30))
    text = spec("a: {op: relu}\n" + dead + "b: {op: relu, from: a}\n")
    warnings = cnngraph.load(text).warnings
    assert len(warnings) == 20
    assert warnings[-1].notes[-1] == "and 10 more CG404 warning(s) like this, not shown"


def test_unused_block_definition_is_a_warning() -> None:
    model = cnngraph.load(spec("- relu", blocks="spare: {layers: [relu]}"))
    assert [w.code for w in model.warnings] == ["CG407"]


def test_unknown_output() -> None:
    text = spec("a: {op: relu}", tail="outputs: [a, b]")
    expect(text, "CG405", "b]")


def test_concat_needs_two_inputs() -> None:
    text = spec("""
        a: {op: relu}
        b: {op: concat, from: [a]}
    """)
    expect(text, "CG408", "b: {op")


def test_block_input_count() -> None:
    text = spec(
        "b: {block: two}",
        blocks="""
        two:
          inputs: [x, skip]
          layers: {cat: {op: concat, from: [x, skip]}}
    """,
    )
    expect(text, "CG408", "{block: two}")


# --- shapes ----------------------------------------------------------------------------------


def test_kernel_larger_than_input() -> None:
    text = spec("c: {op: conv2d, out_channels: 4, kernel_size: 7}", input_="[3, 5, 5]")
    d = expect(text, "CG501", "7}")
    assert "c:" in d.message


def test_groups_must_divide_channels() -> None:
    text = spec("c: {op: conv2d, out_channels: 8, kernel_size: 3, groups: 2}")
    expect(text, "CG502", "2}")


def test_residual_of_unequal_shapes() -> None:
    text = spec(
        "b: {block: down}",
        blocks="""
        down:
          layers: [{op: conv2d, out_channels: 3, kernel_size: 3, stride: 2, padding: 1}]
          residual: true
    """,
    )
    d = expect(text, "CG503", "residual: true")
    assert "[3, 16, 16]" in d.message and "[3, 32, 32]" in d.message


def test_concat_of_unequal_sizes() -> None:
    text = spec("""
        a: {op: max_pool2d, kernel_size: 2}
        b: {op: concat, from: [input, a]}
    """)
    expect(text, "CG504", "b: {op")


def test_linear_needs_a_flat_tensor() -> None:
    d = expect(spec("fc: {op: linear, out_features: 10}"), "CG505", "fc: {op")
    assert d.hint is not None and "flatten" in d.hint


def test_conv_after_flatten() -> None:
    text = spec("""
        f: {op: flatten}
        c: {op: conv2d, out_channels: 4, kernel_size: 1}
    """)
    expect(text, "CG506", "c: {op")


def test_declared_in_channels_is_checked() -> None:
    text = spec("c: {op: conv2d, in_channels: 4, out_channels: 8, kernel_size: 1}")
    expect(text, "CG507", "4, out")


def test_absurd_sizes() -> None:
    expect(spec("- relu", input_="[3, 100000000, 3]"), "CG202", "100000000")
    text = spec("c: {op: conv2d, out_channels: 1000000000, kernel_size: 1}")
    expect(text, "CG202", "1000000000")
    text = spec("f: {op: flatten}", input_="[256, 256, 512]")  # 2**25 features
    expect(text, "CG508", "f: {op")
    text = spec("f: {op: flatten}", input_="[16384, 2048, 2048]")  # 2**36 values
    expect(text, "CG508", "[16384")


def test_pool_padding_too_large() -> None:
    text = spec("p: {op: max_pool2d, kernel_size: 3, padding: 2}")
    expect(text, "CG509", "2}")


def test_output_padding_too_large() -> None:
    text = spec(
        "u: {op: conv_transpose2d, out_channels: 3, kernel_size: 3, stride: 2, output_padding: 2}"
    )
    expect(text, "CG510", "2}")


def test_gate_shapes_must_broadcast() -> None:
    text = spec("""
        a: {op: conv2d, out_channels: 5, kernel_size: 1}
        m: {op: mul, from: [input, a]}
    """)
    expect(text, "CG511", "m: {op")


def test_concat_along_the_batch() -> None:
    text = spec("c: {op: concat, dim: 0, from: [input, input]}")
    expect(text, "CG512", "0, from")


def test_projection_cannot_upsample() -> None:
    text = spec(
        "b: {block: up}",
        blocks="""
        up:
          layers: [{op: conv_transpose2d, out_channels: 4, kernel_size: 2, stride: 2}]
          residual: {projection: shortcut}
    """,
    )
    expect(text, "CG513", "residual: {projection")


def test_same_padding_needs_stride_one() -> None:
    text = spec("c: {op: conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: same}")
    expect(text, "CG514", "same}")


# --- reporting -------------------------------------------------------------------------------


def test_several_problems_in_one_run() -> None:
    text = spec("""
        a: {op: conv2d, out_channels: 4, kernal_size: 3}
        b: {op: relu, from: nope}
        c: {op: tanhh}
    """)
    assert {d.code for d in problems(text)} >= {"CG201", "CG401", "CG204"}


def test_a_block_mistake_is_reported_once() -> None:
    text = spec(
        "b: {block: blk, repeat: 5}",
        blocks="""
        blk:
          layers: [{op: conv2d, out_channels: 4, kernal_size: 3}]
    """,
    )
    found = [d for d in problems(text) if d.code == "CG201"]
    assert len(found) == 1
    assert "4 more place(s)" in found[0].notes[0]


def test_value_from_a_call_site_is_located_there() -> None:
    text = spec(
        "b: {block: blk, width: 2.5}",
        blocks="""
        blk:
          params: {width: any}
          layers: [{op: conv2d, out_channels: $width, kernel_size: 1}]
    """,
    )
    expect(text, "CG202", "2.5")


def test_dict_specs_report_key_paths() -> None:
    data = {
        "cnngraph": 1,
        "name": "t",
        "input": [3, 8, 8],
        "layers": {"c": {"op": "conv2d", "out_channels": 4, "kernal_size": 3}},
    }
    d = next(d for d in problems(data) if d.code == "CG201")
    assert d.location.key == "layers.c.kernal_size"
    assert d.location.line is None


@pytest.mark.parametrize(
    "entry",
    [
        "r: {op: relu, for: x of $widths}",
        "r: {op: relu, for: x in $widths, repeat: 2}",
        "r: {op: relu, for: if in $widths}",
        "r: {op: relu, for: x in 3}",
        'r: {op: relu, for: "x in ${range(2000)}"}',
    ],
)
def test_bad_for(entry: str) -> None:
    text = spec(entry, head="params: {widths: [8, 16]}")
    expect(text, "CG305", entry.split("for: ")[1][:4])


@pytest.mark.parametrize(
    ("layers", "blocks", "needle"),
    [
        ("s: [{op: relu, spread: true}]", "", "true"),
        ("s: {block: two, spread: true}", "two: {layers: [relu, relu]}", "true"),
        ("s: [{block: res, spread: true}]", "res: {layers: [relu], residual: true}", "true}]"),
        ("s: [relu, {block: two, spread: true, from: input}]", "two: {layers: [relu]}", "true"),
        ("s: [{block: two, spread: yes please}]", "two: {layers: [relu]}", "yes"),
    ],
)
def test_spread_misuse(layers: str, blocks: str, needle: str) -> None:
    expect(spec(layers, blocks=blocks), "CG313", needle)


@pytest.mark.parametrize(
    "names",
    ["layer{k}", "a.{i}", "x{i!r}", "{i:03d}", "{flag}", "'{'"],
)
def test_bad_copy_names(names: str) -> None:
    text = spec(f'r: {{op: relu, repeat: 2, names: "{names}"}}', head="params: {flag: true}")
    expect(text, "CG202", f'"{names}"')


def test_names_need_copies() -> None:
    expect(spec('r: {op: relu, names: "a{i}"}'), "CG202", "names")


def test_copy_names_must_differ() -> None:
    expect(spec('r: {op: relu, repeat: 2, names: "same"}'), "CG402")


def test_inline_sequence_with_layers_needs_a_body() -> None:
    expect(spec("s: {layers: 3}"), "CG207")
    expect(spec("s: {layers: [relu], width: 3}"), "CG207")


def test_a_spread_block_sees_the_channels_before_it() -> None:
    model = cnngraph.load(
        spec(
            "s: [{op: conv2d, out_channels: 6, kernel_size: 1}, {block: half, spread: true}]",
            blocks="half: {layers: [{op: conv2d, out_channels: '${in_channels // 2}', "
            "kernel_size: 1}]}",
        )
    )
    assert model.layer("s.1").shape == (3, 32, 32)


def test_bad_copy_names_under_a_name_are_reported_once() -> None:
    found = [d for d in problems(spec('r: {op: relu, repeat: 3, names: "x{k}"}')) if d.code]
    assert [d.code for d in found] == ["CG202"]


def test_mistakes_in_parts_the_params_leave_off_are_found() -> None:
    """ResNet's `basic` block is unused at the defaults (`block: bottleneck`): its typo is
    still reported, once, where it is written."""
    conv1 = "kernel_size: 3, stride: $stride, padding: 1, bias: false}"
    text = (SPECS / "resnet.yaml").read_text().replace(conv1, "kernal" + conv1[6:], 1)
    found = expect(text, "CG201", "kernal_size")
    assert found.hint == "did you mean 'kernel_size'?"


def test_switched_off_and_unused_definitions_are_checked() -> None:
    text = spec(
        """
        a: {op: relu}
        off: {op: rleu, if: false}
        never: {block: spare, repeat: 0}
        """,
        blocks="spare: {layers: [{block: nothing}, {op: conv2d, out_channel: 3}]}",
    )
    codes = sorted(d.code for d in problems(text))
    assert codes == ["CG201", "CG204", "CG205"]


def test_a_value_that_failed_brings_no_second_error() -> None:
    text = spec(
        "c: {op: conv2d, out_channels: ${b + 1}, kernel_size: 1}",
        head='params: {a: "${1/0}", b: "${len(a)}"}',
    )
    assert [d.code for d in problems(text.replace("${b + 1}", '"${b + 1}"'))] == ["CG304"]


def test_every_error_the_compiler_writes_has_a_hint() -> None:
    """Each `diags.error(...)` in the source says what to write instead (pydantic's messages
    go through one place, pydantic_errors.py, which adds its own)."""
    import ast

    def without_hint(node: ast.AST) -> bool:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            return False
        hinted = len(node.args) >= 4 or any(k.arg == "hint" for k in node.keywords)
        return node.func.attr == "error" and not hinted

    sources = sorted((SPECS.parent / "cnngraph").rglob("*.py"))
    missing = [
        f"{path.name}:{node.lineno}"
        for path in sources
        if path.name != "pydantic_errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if without_hint(node)
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("layer", "code", "message"),
    [
        ("{op: chunk, chunks: 2, index: 0}", "CG515", "5 values along dim 1 do not make 2"),
        ("{op: channel_shuffle, groups: 2}", "CG502", "5 channels do not split into 2 groups"),
        ("{op: unflatten, sizes: [2, 2]}", "CG515", "[2, 2] holds 4 values, dim 1 has 5"),
        ("{op: reshape, shape: [-1, 3]}", "CG515", "80 values of a [5, 4, 4] sample do not divide"),
        ("{op: unflatten, dim: 0, sizes: [1, 5]}", "CG512", "is the batch dimension"),
    ],
)
def test_reshapes_that_do_not_fit(layer: str, code: str, message: str) -> None:
    d = expect(spec(f"r: {layer}", input_="[5, 4, 4]"), code)
    assert message in d.message and d.hint and d.location.line == 5


@pytest.mark.parametrize(
    "layer",
    [
        "{op: chunk, chunks: 2, index: 2}",
        "{op: unflatten, sizes: [-1, -1]}",
        "{op: reshape, shape: [0, 4]}",
        "{op: channel_shuffle, groups: 0}",
    ],
)
def test_reshape_fields_out_of_range(layer: str) -> None:
    assert expect(spec(f"r: {layer}", input_="[4, 4, 4]"), "CG202").location.line == 5
