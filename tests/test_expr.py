"""The expression evaluator: what it computes, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from cnngraph.expr import (
    Deferred,
    ExprError,
    NeedsShape,
    ShapeSymbol,
    evaluate,
    make_divisible,
    source_of,
    spend,
    work_budget,
    work_left,
)
from cnngraph.expr_syntax import MAX_TOTAL_WORK

ENV = {"width": 64, "ratio": 0.25, "arch": [[1, 64], [2, 128]], "flag": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("width * 4", 256),
        ("width // 3", 21),
        ("width / 3 > 21", True),
        ("2 ** 10", 1024),
        ("-width % 5", 1),
        ("max(1, int(width * ratio))", 16),
        ("round(2.5)", 2),
        ("ceil(width * 1.1)", 71),
        ("floor(7.9)", 7),
        ("make_divisible(width * 1.1, 8)", 72),
        ("arch[1][0]", 2),
        ("len(arch)", 2),
        ("arch[-1]", [2, 128]),
        ("arch[0:1]", [[1, 64]]),
        ("width if flag else 0", 64),
        ("not flag or width", 64),
        ("1 < width <= 64", True),
        ("3 in [1, 2, 3]", True),
        ("true and not false", True),
        ("sum([1, 2, 3])", 6),
        ("min([3, 1, 2])", 1),
        ("abs(-3)", 3),
        ("make_divisible(3, 8, min_value=4)", 4),
        ("log(8, 2)", 3.0),
        ("float32(0.1)", 0.10000000149011612),  # the float32 nearest 0.1, as torch holds it
        ("float32(16777217)", 16777216.0),  # 2^24 + 1 has no float32
    ],
)
def test_evaluates(text: str, expected: Any) -> None:
    assert evaluate(text, ENV) == expected


def test_make_divisible_matches_the_mobilenet_rule() -> None:
    # The rule rounds to the nearest multiple, never losing more than 10%.
    assert make_divisible(32 * 0.75, 8) == 24
    assert make_divisible(18, 8) == 24  # 16 would lose more than 10%
    assert make_divisible(1, 8) == 8
    assert make_divisible(96 * 1.4, 8) == 136


def test_comprehensions_and_range() -> None:
    env = {"rows": [[1, 16, 2], [6, 24, 3]], "depth_mult": 1.2}
    assert evaluate("[ceil(r[2] * depth_mult) for r in rows]", env) == [3, 4]
    assert evaluate("sum([r[2] for r in rows][:1])", env) == 2
    assert evaluate("[i for i in range(6) if i % 2 for j in range(i) if j < 2]", env) == [
        1,
        3,
        3,
        5,
        5,
    ]
    assert evaluate("range(2, 7, 2)", env) == [2, 4, 6]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("__import__('os')", "CG303"),
        ("width.real", "CG303"),
        ("(lambda: 1)()", "CG303"),
        ("[x for (x, y) in arch]", "CG303"),
        ("{x for x in arch}", "CG303"),
        ("[x for x in 3]", "CG304"),
        ("range(10 ** 9)", "CG304"),
        ("[a for a in range(5000) for b in range(5000)]", "CG304"),
        ("{'a': 1}", "CG303"),
        ("width is 64", "CG303"),
        ("f'{width}'", "CG303"),
        ("eval('1')", "CG303"),
        ("globals()", "CG303"),
        ("widht", "CG302"),
        ("1 +", "CG301"),
        ("1 / 0", "CG304"),
        ("9 ** 9 ** 9", "CG304"),
        ("'a' * 10 ** 6", "CG304"),
        ("int('x')", "CG304"),
        ("arch[9]", "CG304"),
        ("x" * 2000, "CG301"),
        ("2 ** 100", "CG304"),
        ("1e308 * 10", "CG304"),
        ("log(0)", "CG304"),
        ("float32('a')", "CG304"),
        ("float32(true)", "CG304"),
        ("float32(1e39)", "CG304"),  # past float32's range
        ("float32(10 ** 400)", "CG304"),
    ],
)
def test_refuses(text: str, code: str) -> None:
    with pytest.raises(ExprError) as info:
        evaluate(text, ENV)
    assert info.value.code == code


def test_shape_symbols_defer_then_resolve() -> None:
    env = {"in_channels": ShapeSymbol("x"), "t": 6}
    with pytest.raises(NeedsShape):
        evaluate("in_channels * t", env)
    deferred = Deferred("in_channels * t", env)
    resolved = evaluate(
        "hidden // 2",
        {"hidden": deferred},
        lambda p: evaluate(p.text, p.env, lambda q: 16) if isinstance(p, Deferred) else 16,
    )
    assert resolved == 48


@pytest.mark.parametrize(
    ("value", "expected"),
    [("$width", "width"), ("${width * 2}", "width * 2"), ("plain", None), (3, None)],
)
def test_source_of(value: object, expected: str | None) -> None:
    assert source_of(value) == expected


def test_malformed_reference() -> None:
    with pytest.raises(ExprError):
        source_of("$5x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sum([[1, 2], [3]], [0])", [0, 1, 2, 3]),  # as Python's, in linear time
        ("'%3d|%-4s|%.2f|%%' % [7, 'ab', 0.5]", None),  # a list is one argument: refused
        ("'%3d|%%' % 7", "  7|%"),
        ("len([[0] * 99] * 99)", 99),  # 9,900 items (and 99 lists) counted through the alias
    ],
)
def test_bounded_constructs_still_compute(text: str, expected: Any) -> None:
    if expected is None:
        with pytest.raises(ExprError):
            evaluate(text, ENV)
    else:
        assert evaluate(text, ENV) == expected


@pytest.mark.parametrize(
    "text",
    [
        "len(sum([[1] * 4000] * 4000, []))",
        "len([range(10000) for x in range(10000)])",
        "len([[[1] * 9999] * 9999] * 9999)",
        "[[[1] * 99] * 99] * 99 == [[[1] * 99] * 99] * 99",
        "len('%10000000000d' % 1)",
        "len('%*d' % [5, 1])",
        "len([x for x in range(10000) for y in range(10000)])",
    ],
)
def test_one_budget_bounds_every_construct(text: str) -> None:
    with pytest.raises(ExprError) as info:
        evaluate(text, ENV)
    assert info.value.code == "CG304"


def test_a_compile_shares_one_budget_across_expressions() -> None:
    """Each expression within its own limit, a thousand of them over the compile's."""
    import cnngraph

    heavy = "len([x for x in range(5000) if x >= 0])"  # about 20,000 units, under 200,000
    spec = "cnngraph: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n"
    spec += f'  r: {{op: relu, repeat: 1000, inplace: "${{{heavy} < 0}}"}}\n'
    # the same expression on the same values a thousand times: its result is kept, and its
    # work still counted, so the budget means what the spec asks for
    for text in (spec, spec.replace("repeat: 1000", 'for: "i in ${range(1000)}"')):
        with pytest.raises(cnngraph.SpecError) as info:
            cnngraph.load(text)
        first = info.value.diagnostics[0]
        assert first.code == "CG304" and "together" in first.message


def test_kept_list_results_are_fresh_copies_and_keyed_by_the_values_read() -> None:
    """Within a compile, a costly expression over lists is computed once per values read
    (after its first, which finds it costly); what it gives is a copy each time, and values
    alike but of other types (1 and 1.0, a list and a tuple) are other keys."""
    text = "[[x * 2 for x in row] for row in table]"
    table = [list(range(40)), [3]]
    doubled = [[2 * x for x in range(40)], [6]]
    kept: dict[tuple[Any, ...], tuple[Any, int]] = {}
    with work_budget(kept):
        assert evaluate(text, {"table": table}) == doubled
        evaluate(text, {"table": table})[0].append(99)  # reaches neither the kept value
        assert evaluate(text, {"table": table}) == doubled  # nor the next
        assert [key for key in kept if key[0] == text] != []
        floats = [[float(x) for x in range(40)], [3]]
        for _ in range(2):
            assert evaluate(text, {"table": floats}) == [[2.0 * x for x in range(40)], [6]]
            assert type(evaluate(text, {"table": floats})[0][0]) is float
        assert len([key for key in kept if key[0] == text]) == 2


def test_lists_too_large_to_key_are_computed_each_time() -> None:
    """Aliases nest lists far larger than the file: no key walks them."""
    kept: dict[tuple[Any, ...], tuple[Any, int]] = {}
    big = [[0] * 100] * 100  # 10,000 items through 100 aliases
    with work_budget(kept):
        assert evaluate("len(big)", {"big": big}) == 100
    assert kept == {}


def test_lists_nested_too_deep_to_key_are_computed_each_time() -> None:
    """Params can nest lists hundreds of levels deep through expressions: comparing such keys
    would recurse once per level, so none is made (a costly text read them three times and
    overflowed the stack)."""
    deep: Any = 1
    for _ in range(600):
        deep = [deep]
    kept: dict[tuple[Any, ...], tuple[Any, int]] = {}
    text = "len(p) + len([0 for _ in range(70)]) * 0"
    with work_budget(kept):
        assert [evaluate(text, {"p": deep}) for _ in range(3)] == [1, 1, 1]
    assert kept == {}


@pytest.mark.parametrize("text", ["xs[0, 1:2]", "1 if true else xs[0, 1:2]", "q and xs[1:2, 0]"])
def test_a_slice_inside_an_index_tuple_is_refused_as_written(text: str) -> None:
    """Refused when the text is read, with CG303, whether or not its branch would run (it
    used to fail with an internal error where it ran)."""
    with pytest.raises(ExprError) as caught:
        evaluate(text, {"xs": [1, 2, 3]})
    assert caught.value.code == "CG303"


def _leave(units: int) -> None:
    """Inside work_budget: spend the compile's budget down to `units`."""
    spend(MAX_TOTAL_WORK - units)


def test_a_bare_name_is_charged_after_what_it_holds_is_evaluated() -> None:
    """`$d` holding a Deferred: the Deferred's evaluation sees the budget the name has not yet
    spent its step of (3 units: `a + 1` costs 3, the name 1 more)."""

    def resolve(value: Any) -> Any:
        return evaluate(value.text, value.env, resolve)

    with work_budget():
        _leave(3)
        assert evaluate("d", {"d": Deferred("a + 1", {"a": 1})}, resolve) == 2
        assert work_left() == -1


def test_a_list_is_charged_in_two_steps_as_it_is_walked() -> None:
    """The size of a list an expression makes is charged twice, once going down and once
    coming back; running out on the first leaves the second uncharged."""
    with work_budget():
        _leave(5000)
        with pytest.raises(ExprError, match="together do too much work"):
            evaluate("[0] * 8000", {})
        assert work_left() == 5000 - (6 + 8000)  # five steps and [0] twice, then 8000 once
