"""Diagrams: deterministic DOT, folding, distinct skip connections, escaping, rendering."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

import cnngraph
from cnngraph.backends import dot, dot_source
from cnngraph.cli import main

from .conftest import SPECS
from .test_language import SE

GOLDEN = Path(__file__).parent / "golden"


def _golden(request: pytest.FixtureRequest, name: str, source: str) -> None:
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.write_text(source)
    assert golden.read_text() == source


def test_golden_dot(request: pytest.FixtureRequest) -> None:
    """The DOT of ResNet-18 at depth 2, byte for byte (`pytest --update-golden` rewrites)."""
    source = cnngraph.load(SPECS / "resnet18.yaml").to_dot(depth=2)
    assert cnngraph.load(SPECS / "resnet18.yaml").to_dot(depth=2) == source
    _golden(request, "resnet18_depth2.dot", source)


def test_golden_dot_of_calls_that_must_not_fold(request: pytest.FixtureRequest) -> None:
    """Asymmetric kernels, dilations, activations and optional layers, at depth 1 (folded
    blocks) and in full."""
    model = cnngraph.load(FOLDS)
    _golden(request, "folds_depth1.dot", model.to_dot(depth=1))
    _golden(request, "folds.dot", model.to_dot())


def test_depth_folds_blocks_into_nodes() -> None:
    model = cnngraph.load(SPECS / "googlenet.yaml")
    shallow, deep = model.to_dot(depth=1), model.to_dot()
    assert "cluster_" not in shallow.replace("cluster_legend", "")
    assert deep.count("subgraph cluster_") > 20
    assert "inception3a" in shallow and "branch4" not in shallow


def test_identical_repeats_fold() -> None:
    source = cnngraph.load(SPECS / "resnet.yaml").to_dot()
    assert "1\u20135</b> bottleneck \u00d75" in source  # layer3.1-5, drawn once
    assert source.count("projection 1x1") == 4  # one per stage; identities are plain edges


def test_spread_repeats_fold_and_only_real_shortcuts_are_drawn() -> None:
    source = cnngraph.load(SPECS / "mobilenet_v2.yaml").to_dot()
    assert "5\u20136</b> inverted_residual \u00d72" in source  # features.5-6, drawn once
    # Blocks 1, 2, 4, 7, 11, 14, 17 change shape: their `when` fails, so no skip edge; the
    # others (3, 5-6 folded, 8-10 folded, 12-13, 15-16) have one each; plus the legend's.
    assert source.count("style=dashed]") == 6


def test_skip_connections_are_styled_and_explained() -> None:
    resnet = cnngraph.load(SPECS / "resnet18.yaml").to_dot()
    assert re.search(
        r"-> \w+ \[label=\" 64\u00d756\u00d756\" color=\"#1f6fb4\" penwidth=1\.5 "
        r"style=dashed\]",
        resnet,
    )
    assert "legend_residual" in resnet
    googlenet = cnngraph.load(SPECS / "googlenet.yaml").to_dot(depth=2)
    assert 'color="#2b8a3e"' in googlenet and "legend_concat" in googlenet
    gate = cnngraph.load(SE).to_dot()
    assert "style=dotted" in gate and "legend_gate" in gate


def test_labels_are_escaped() -> None:
    name = 'a<b>&"c" \u00e9\u00e8 \\ {x}'
    spec = {
        "cnngraph": 1,
        "name": name,
        "input": [3, 8, 8],
        "outputs": {"y": "c"},
        "layers": {"c": "relu"},
    }
    source = cnngraph.load(spec).to_dot()
    assert "a&lt;b&gt;&amp;&quot;c&quot;" in source
    assert dot.render(source, "svg").startswith(b"<?xml")


def test_control_characters_in_names_are_shown_not_passed_to_dot() -> None:
    """dot refuses control characters in labels: they are drawn as escapes."""
    spec = {"cnngraph": 1, "name": "t\x1b[31m\x01", "input": [3, 8, 8], "layers": {"c": "relu"}}
    source = cnngraph.load(spec).to_dot()
    assert "\x1b" not in source and "\x01" not in source and "\\u001b" in source
    assert dot.render(source, "svg").startswith(b"<?xml")


def test_render_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert main(["render", str(SPECS / "googlenet.yaml"), "-o", str(svg), "--depth", "1"]) == 0
    assert svg.read_bytes().startswith(b"<?xml") and b"inception5b" in svg.read_bytes()
    assert main(["render", str(SPECS / "resnet18.yaml"), "-o", str(png), "--rankdir", "LR"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["render", str(SPECS / "resnet18.yaml"), "-o", str(tmp_path / "r.dot")]) == 0
    assert (tmp_path / "r.dot").read_text().startswith("digraph")


def test_without_graphviz_the_dot_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dot, "engine", lambda: None)
    out = tmp_path / "net.svg"
    assert main(["render", str(SPECS / "resnet18.yaml"), "-o", str(out)]) == 1
    assert not out.exists() and (tmp_path / "net.dot").read_text().startswith("digraph")
    assert "pip install graphviz-pure" in capsys.readouterr().err


def test_notebook_display() -> None:
    svg = cnngraph.load(SPECS / "resnet18.yaml")._repr_svg_()
    assert svg is not None and "<svg" in svg


def test_a_summary_shows_as_its_table_in_a_repl_and_a_notebook() -> None:
    summary = cnngraph.load(SPECS / "lenet5.yaml").summary()
    assert isinstance(summary, str) and repr(summary) == str(summary)
    assert summary._repr_html_() == "<pre>" + html.escape(summary) + "</pre>"


FOLDS = """
cnngraph: 1
name: fold
input: [3, 32, 32]
blocks:
  cb:
    params: {k: any, p: any, d: 1, act: relu, se: false}
    layers:
      conv: {op: conv2d, out_channels: 8, kernel_size: $k, padding: $p, dilation: $d}
      act: {op: $act}
      gate: {op: sigmoid, if: $se}
layers:
  stem: {op: conv2d, out_channels: 8, kernel_size: 1}
  a1: {block: cb, k: [7, 1], p: [3, 0]}
  a2: {block: cb, k: [1, 7], p: [0, 3]}
  a3: {block: cb, k: [7, 1], p: [3, 0]}
  d1: {block: cb, k: 3, p: 1, d: 1}
  d2: {block: cb, k: 3, p: 2, d: 2}
  e1: {block: cb, k: 3, p: 1}
  e2: {block: cb, k: 3, p: 1, act: sigmoid}
  e3: {block: cb, k: 3, p: 1, se: true}
  s1: {block: cb, k: 3, p: 1}
  s2: {block: cb, k: 3, p: 1}
"""


def test_only_identical_calls_fold() -> None:
    """Asymmetric kernels, dilations, activations and optional layers that differ keep their
    own nodes, though shapes and parameter counts agree; identical calls fold."""
    source = cnngraph.load(FOLDS).to_dot(depth=1)
    drawn = re.findall(r"label=<<b>([^<]+)</b>", source)
    assert drawn[3:-1] == ["a1", "a2", "a3", "d1", "d2", "e1", "e2", "e3", "s1\u2013s2"]


def test_a_picture_too_long_to_read_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "long.yaml"
    layers = "".join(f"  r{i}: {{op: relu}}\n" for i in range(120))
    spec.write_text("cnngraph: 1\nname: long\ninput: [3, 8, 8]\nlayers:\n" + layers)
    assert main(["render", str(spec), "-o", str(tmp_path / "long.png")]) == 0
    assert "too long to read" in capsys.readouterr().err
    assert main(["render", str(spec), "-o", str(tmp_path / "long.svg")]) == 0
    assert "too long to read" not in capsys.readouterr().err


def test_parallel_branches_are_drawn_in_spec_order() -> None:
    """Inception's four branches side by side as the spec lists them, at full depth (Graphviz
    alone put the single-conv branch last) and with branches folded into nodes."""
    model = cnngraph.load(SPECS / "googlenet.yaml")
    for depth in (None, 2):
        svg = dot.render(model.to_dot(depth=depth), "svg").decode()
        lefts = _entry_lefts(svg, "inception4c", ("branch1", "branch2", "branch3", "branch4"))
        assert lefts == sorted(lefts), (depth, lefts)


def _entry_lefts(svg: str, block: str, paths: tuple[str, ...]) -> list[float]:
    """Where each path's entry stands, left to right: a node's tooltip is its path, and the
    first one drawn for a path is its entry."""
    lefts = []
    for path in paths:
        at = svg.index(f'xlink:title="{block}.{path}')
        lefts.append(float(re.search(r' x="([-\d.]+)"', svg[at:]).group(1)))  # type: ignore[union-attr]
    return lefts


def test_paths_written_one_after_another_are_drawn_in_spec_order() -> None:
    """Inception-v3 writes its paths as layers reading the block input, each path's layers
    together: the paths' entries still stand in spec order (Graphviz put the double 3x3 path
    before the 5x5 one)."""
    model = cnngraph.load(SPECS / "inception_v3.yaml", params={"aux_logits": False})
    svg = dot.render(model.to_dot(depth=2), "svg").decode()
    entries = ("branch1x1", "branch5x5_1", "branch3x3dbl_1", "pool")
    lefts = _entry_lefts(svg, "Mixed_5b", entries)
    assert lefts == sorted(lefts), lefts


def test_siblings_alike_side_by_side_do_not_fold() -> None:
    """Two calls alike that both read the block input are parallel paths, not a repeat: each
    keeps its node (Inception-v3's Mixed_6e drew branch1x1 and branch7x7_1 as one, x2)."""
    source = cnngraph.load(
        """
cnngraph: 1
name: siblings
input: [8, 8, 8]
blocks:
  cb:
    layers: [{op: conv2d, out_channels: 8, kernel_size: 1}, relu]
  paths:
    layers:
      a: {block: cb, from: input}
      b: {block: cb, from: input}
      cat: {op: concat, from: [a, b]}
layers:
  p: {block: paths}
"""
    ).to_dot(depth=2)
    drawn = re.findall(r"label=<<b>([^<]+)</b>", source)
    assert [name for name in drawn if name in ("a", "b") or "\u2013" in name] == ["a", "b"]


TRICKY_IDS = [
    "",
    "n1",
    "_x9",
    "9x",
    "-4.2",
    ".42",
    "node",
    "Graph",
    "layer1.0",
    "a b",
    'say "hi"',
    'already \\"escaped\\"',
    'two \\\\"',
    "<<b>html</b>>",
    "64\u00d756\u00d756",
    " 3\u00d7224\u00d7224",
    "#555555",
    "rounded,filled",
]


@pytest.mark.parametrize("text", TRICKY_IDS)
def test_dot_quoting_matches_graphviz_packages(text: str) -> None:
    quoting = pytest.importorskip("graphviz.quoting")
    assert dot_source.quote(text) == quoting.quote(text)


def test_dot_statements_match_graphviz_packages() -> None:
    graphviz = pytest.importorskip("graphviz")
    theirs = graphviz.Digraph(
        name="net", graph_attr={"rankdir": "TB", "label": "<<b>t</b>>"}, node_attr={"shape": "box"}
    )
    ours = dot_source.DotGraph(
        "net", {"graph": {"rankdir": "TB", "label": "<<b>t</b>>"}, "node": {"shape": "box"}}
    )
    for g in (theirs, ours):
        g.node("input", "<<b>input</b>>", shape="oval", fillcolor="#ffffff")
        with g.subgraph(name="cluster_n1") as cluster:
            cluster.attr(label="layer 1", style="rounded,dashed")
            cluster.node("n2", "conv", tooltip="layer1.0")
            with cluster.subgraph(name="cluster_n3") as inner:
                inner.node("n4", "", shape="point")
        g.edge("input", "n2", label=" 3\u00d78\u00d78", style="dashed")
        g.edge("n2", "n4")
    assert ours.source == theirs.source
