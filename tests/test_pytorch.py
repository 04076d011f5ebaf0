"""The generated torch modules agree exactly with the static analysis, and with torchvision."""

from __future__ import annotations

import ast
import copy
import inspect
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings

import cnngraph
from cnngraph.backends.pytorch import load_source, parametric
from cnngraph.backends.pytorch.snapshot import generate as snapshot
from cnngraph.cli import main

from .conftest import ROOT, SPECS
from .library import SAMPLED_TORCHVISION_ROWS, TORCHVISION_ROWS, Row
from .random_specs import RANDOM_BLOCKS, random_specs

GOLDEN = Path(__file__).parent / "golden"
ALL_SPECS = sorted(SPECS.glob("*.yaml"))


def check_against_torch(model: cnngraph.Model, batch: int = 2) -> torch.nn.Module:
    """Build the module; every layer's output shape and the parameter count must be the
    inferred ones. Layers are found by name: module paths are the spec's names."""
    module = model.to_module().eval()
    assert sum(p.numel() for p in module.parameters()) == model.params
    seen: dict[str, tuple[int, ...]] = {}
    seen_inputs: dict[str, tuple[tuple[int, ...], ...]] = {}
    hooks = [
        sub.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))
        )
        for name, sub in module.named_modules()
        if name
    ]
    # Inputs too: joins (add, concat, mul) have no module, but their results enter one.
    hooks += [
        sub.register_forward_pre_hook(
            lambda _m, args, name=name: seen_inputs.__setitem__(
                name, tuple(tuple(a.shape[1:]) for a in args)
            )
        )
        for name, sub in module.named_modules()
        if name
    ]
    with torch.no_grad():
        out = module(torch.randn(batch, *model.input_shape))
    for hook in hooks:
        hook.remove()
    expected = {li.name: li.shape for li in model.layers if li.active}
    expected.update({s.path: model.layer(s.output).shape for s in model.graph.scopes.values()})
    checked = {name: shape for name, shape in seen.items() if name in expected}
    assert checked == {name: expected[name] for name in checked}
    runtime = {
        li.name: li.input_shapes[: li.op.runtime_inputs or None]
        for li in model.layers
        if li.active and li.op is not None
    }
    inputs_checked = {n: s for n, s in seen_inputs.items() if n in runtime}
    assert inputs_checked == {n: runtime[n] for n in inputs_checked}
    assert (
        len(checked)
        >= len(
            [li for li in model.layers if li.op and li.op.torch_call(li.input_shapes) and li.active]
        )
        // 2
    )
    label = model.graph.eval_output  # in eval mode, the one output the module returns
    shape = model.outputs[label] if label else model.output_shape
    assert isinstance(shape, tuple)
    assert tuple(out.shape[1:]) == shape
    return module


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_every_spec_builds_with_the_inferred_shapes(path: Path) -> None:
    check_against_torch(cnngraph.load(path))


@pytest.mark.parametrize("row", TORCHVISION_ROWS, ids=lambda row: row.id)
def test_torchvision_weights_load_strictly_and_agree(row: Row) -> None:
    module = row.load().to_module().eval()
    reference = row.torchvision_model()
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, row.small_size(), row.small_size())
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))


@pytest.mark.parametrize("row", SAMPLED_TORCHVISION_ROWS, ids=lambda row: row.id)
def test_a_seed_gives_torchvisions_initial_weights(row: Row) -> None:
    """Bit for bit: the spec's `init:` follows torchvision's, and modules are built in the same
    order, so both draw the same random numbers for the same tensors."""
    # the GoogLeNet row skips torchvision's init elsewhere, to keep the other tests short
    overrides = {"init_weights": True} if "init_weights" in row.torchvision_kwargs else {}
    torch.manual_seed(0)
    reference = row.torchvision_model(**overrides).state_dict()
    torch.manual_seed(0)
    ours = row.load().to_module().state_dict()
    assert list(ours) == list(reference)
    assert [name for name in ours if not torch.equal(ours[name], reference[name])] == []


def test_a_layer_inside_a_block_read_from_outside() -> None:
    """`from: layer3.1.conv2` reads a tensor inside a block (a feature tap): the built module
    gives what a forward hook on torchvision's own ResNet-18 sees, and its logits."""
    text = (SPECS / "resnet18.yaml").read_text()
    text = text.replace(
        "  fc:      {op: linear, out_features: $num_classes}\n",
        "  fc:      {op: linear, out_features: $num_classes}\n"
        "  tap:     {op: relu, from: layer3.1.conv2}\n"
        "outputs: {logits: fc, feature: tap}\n",
    )
    module = cnngraph.load(text).to_module().eval()
    reference = torchvision.models.resnet18().eval()
    module.load_state_dict(reference.state_dict(), strict=True)
    seen: list[torch.Tensor] = []
    reference.layer3[1].conv2.register_forward_hook(lambda m, i, out: seen.append(out.clone()))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out, expected = module(x), reference(x)
    assert torch.equal(out.logits, expected)
    assert torch.equal(out.feature, torch.relu(seen[0]))


def test_a_layer_inside_a_block_read_from_outside_on_its_own() -> None:
    """The same in a small spec, through a named block (not a numbered repeat)."""
    spec = """
cnngraph: 1
name: t
input: [3, 8, 8]
blocks:
  unit:
    layers:
      a: {op: conv2d, out_channels: 4, kernel_size: 1}
      c: {op: relu}
layers:
  l1: {block: unit}
  x: {op: conv2d, out_channels: 4, kernel_size: 1, from: l1.a}
  y: {op: add, from: [x, l1]}
"""
    module = cnngraph.load(spec).to_module().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        a = module.l1.a(x)
        assert torch.equal(module(x), module.x(a) + torch.relu(a))


def test_googlenet_aux_heads_in_training_only() -> None:
    # Dropout off on both sides: torchvision draws its masks in another order (aux1 first).
    model = cnngraph.load(
        SPECS / "googlenet.yaml",
        params={"aux_logits": True, "dropout": 0.0, "dropout_aux": 0.0},
    )
    module = model.to_module()
    reference = torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=False, dropout=0.0, dropout_aux=0.0
    )
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    module.train()
    reference.train()
    ours, theirs = module(x), reference(x)
    assert ours._fields == ("logits", "aux_logits2", "aux_logits1")
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    module.eval()
    with torch.no_grad():
        assert module(x).shape == (2, 1000)


@settings(max_examples=550, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=random_specs())
def test_random_specs_build_with_the_inferred_shapes(spec: dict[str, Any]) -> None:
    try:
        model = cnngraph.load(spec)
    except cnngraph.SpecError:
        assume(False)
        return
    check_against_torch(model)


def test_a_strided_block_on_a_1x1_input_keeps_its_projection() -> None:
    """A stride-2 residual block on a 1x1 feature map: the sizes do not change, but the
    shortcut is still the strided 1x1 conv torchvision builds (found by the test above)."""
    spec = {
        "cnngraph": 1,
        "name": "tiny",
        "input": [1, 6, 6],
        "blocks": {"res": RANDOM_BLOCKS["res"]},
        "layers": {
            "p0": {"op": "max_pool2d", "kernel_size": 1, "stride": 6},
            "r5": {"block": "res", "out": 1, "stride": 2},
        },
    }
    model = cnngraph.load(spec)
    assert model.layer("r5.shortcut").params == 3  # a 1x1 conv 1 -> 1 and its batch norm
    check_against_torch(model)


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_built_modules_behave_like_imported_ones(path: Path) -> None:
    """`inspect.getsource` and TorchScript read the code; deepcopy keeps the classes; a pickle
    carries the source, so it loads where the module was never built."""
    model = cnngraph.load(path)
    module = model.to_module().eval()
    assert inspect.getsource(type(module)).startswith(f"class {type(module).__name__}(")
    x = torch.randn(1, *model.input_shape)
    with torch.no_grad():
        expected = module(x)
        copied = copy.deepcopy(module)
        assert type(copied) is type(module)
        assert torch.equal(copied(x), expected)
        data = pickle.dumps(module)
        del sys.modules[type(module).__module__]  # as in a process that never built it
        restored = pickle.loads(data)
        assert type(restored) is not type(module)
        assert type(restored).__qualname__ == type(module).__qualname__
        assert torch.equal(restored(x), expected)
    if path.stem in ("resnet18", "mobilenet_v3", "anynet", "densenet", "efficientnet"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
            scripted = torch.jit.script(module)
        with torch.no_grad():
            assert torch.allclose(scripted(x), expected)


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_fx_symbolic_trace(path: Path) -> None:
    model = cnngraph.load(path)
    module = model.to_module().eval()
    traced = torch.fx.symbolic_trace(module)
    # The spec's own input size, or a small one the model takes, to keep it quick
    rules = model.input_size_rules
    hw = max(64, rules[0].minimum) if rules else 64
    shape = model.input_shape if model.macs < 2e9 else (model.input_shape[0], hw, hw)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        assert torch.equal(traced(x), module(x))


def test_torch_compile_on_cpu() -> None:
    """Inductor, the default backend, on a small model with residual, concat and SE blocks."""
    spec = {
        "cnngraph": 1,
        "name": "small",
        "input": [3, 16, 16],
        "blocks": RANDOM_BLOCKS,
        "layers": {
            "stem": {"op": "conv2d", "out_channels": 8, "kernel_size": 3},
            "res": {"block": "res", "out": 8, "stride": 2},
            "cat": {"block": "cat", "a": 4, "b": 4},
            "se": {"block": "se"},
        },
    }
    module = cnngraph.load(spec).to_module().eval()
    compiled = torch.compile(module)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(compiled(x), module(x), atol=1e-5)


def test_onnx_export(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")  # the torch.export-based exporter's dependency
    module = cnngraph.load(SPECS / "resnet18.yaml").to_module().eval()
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(module, (torch.randn(1, 3, 224, 224),), str(path))
    import onnx

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    output = graph.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in output] == [1, 1000]


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_golden_source(name: str, request: pytest.FixtureRequest) -> None:
    """The generated source, byte for byte. `pytest --update-golden` rewrites the files."""
    source = cnngraph.load(SPECS / f"{name}.yaml").torch_source(f"specs/{name}.yaml")
    golden = GOLDEN / f"{name}.py"
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source)
    assert golden.read_text() == source


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_generated_source_is_ruff_clean_and_deterministic(path: Path) -> None:
    first = cnngraph.load(path).torch_source()
    assert cnngraph.load(path).torch_source() == first

    def ruff(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ruff", *args, "--isolated", "--line-length", "100"]
        command += ["--stdin-filename", "generated.py", "-"]
        return subprocess.run(command, input=first, capture_output=True, text=True, cwd=ROOT)

    result = ruff("check", "--select", "E,F,W,I,B")
    assert result.returncode == 0, result.stdout
    formatted = ruff("format")
    assert formatted.stdout == first  # as ruff formats it: a reformat changes nothing


def test_channel_counts_are_written_as_the_spec_writes_them() -> None:
    """Generated from the definitions: a batch norm after a conv names the conv's output count
    as the spec wrote it, a block call passes the previous block's output, and a projection's
    condition comes from the ops' rules (torchvision's `stride != 1 or inplanes != ...`)."""
    resnet = cnngraph.load(SPECS / "resnet.yaml").torch_source()
    assert "nn.Conv2d(in_channels, width, kernel_size=1, bias=False)\n" in resnet
    assert "self.bn1 = nn.BatchNorm2d(width)\n" in resnet
    assert "self.bn3 = nn.BatchNorm2d(planes * 4)\n" in resnet
    assert "if stride != 1 or in_channels != planes * 4:\n" in resnet
    anynet = cnngraph.load(SPECS / "anynet.yaml").torch_source()
    assert "Cna(inner, out=inner, k=3, stride=stride, groups=inner // group_width)," in anynet
    assert "class Cna2" not in anynet


# A table of mixed types (an asymmetric kernel beside a square one, strings, booleans) and
# per-row multipliers: the hints of the generated file must still be true.
MIXED_TABLES = """
cnngraph: 1
name: mixed_tables
input: [3, 32, 48]
params:
  #       kernel    out  act          pool
  rows: [[[1, 7],   16,  relu,        true],
         [3,        24,  hardswish,   false],
         [[5, 3],   32,  relu,        true]]
  widths: [0.5, 1, 2]
  num_classes: 10
blocks:
  unit:
    params: {k: any, out: int, act: str, pool: bool}
    layers:
      conv: {op: conv2d, out_channels: $out, kernel_size: $k, padding: same, bias: false}
      bn: batch_norm2d
      act: {op: $act}
      pool: {op: max_pool2d, kernel_size: [1, 2], stride: [1, 2], if: $pool}
layers:
  body:
    block: unit
    for: r in ${range(len(rows))}
    k: ${rows[r][0]}
    out: ${int(rows[r][1] * widths[r])}
    act: ${rows[r][2]}
    pool: ${rows[r][3]}
  pool: {op: adaptive_avg_pool2d, output_size: [1, 1]}
  flatten: flatten
  fc: {op: linear, out_features: $num_classes}
"""


def test_mixed_tables_build_for_other_rows() -> None:
    """The table and its types are the constructor's: another table builds another network,
    equal to the compiled one."""
    rows = [[[3, 1], 8, "silu", False], [[1, 5], 12, "relu", True]]
    model = cnngraph.load(MIXED_TABLES, params={"rows": rows, "widths": [2, 1]})
    namespace: dict[str, Any] = {"__name__": "mixed_tables"}
    exec(cnngraph.load(MIXED_TABLES).torch_source(), namespace)
    module = namespace["MixedTables"](
        rows=tuple(tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in rows),
        widths=(2, 1),
    )
    assert sum(p.numel() for p in module.parameters()) == model.params
    assert [name for name, _ in module.named_modules()] == [
        name for name, _ in model.to_module().named_modules()
    ]
    assert tuple(module(torch.randn(1, 3, 32, 48)).shape[1:]) == model.output_shape


def test_generated_sources_type_check(tmp_path: Path) -> None:
    """mypy --strict over every spec's module, with no check left out: the hints are true
    (table params are nested tuples, optional shortcuts are typed, forward's locals are
    declared tensors where a submodule's call, Any in torch's stubs, first sets them)."""
    for path in ALL_SPECS:
        (tmp_path / f"{path.stem}.py").write_text(cnngraph.load(path).torch_source())
    (tmp_path / "mixed_tables.py").write_text(cnngraph.load(MIXED_TABLES).torch_source())
    (tmp_path / "own_init.py").write_text(cnngraph.load(OWN_INIT).torch_source())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".cache"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout


def test_header_names_the_spec_without_machine_paths(tmp_path: Path) -> None:
    """An absolute path shows as its file name: committed output must not depend on who built it.

    A deep checkout once made the header line 101 characters long and failed ruff.
    """
    deep = tmp_path.joinpath(*["a_rather_long_directory_name"] * 6)
    deep.mkdir(parents=True)
    spec = deep / "dcgan_generator.yaml"
    spec.write_text((SPECS / "dcgan_generator.yaml").read_text())
    source = cnngraph.load(spec).torch_source()
    assert str(deep) not in source
    assert source.splitlines()[0] == (
        "# 'dcgan_generator', generated by `cnngraph build` from 'dcgan_generator.yaml'"
        f" (cnngraph {cnngraph.__version__})."
    )
    assert source == cnngraph.load(SPECS / "dcgan_generator.yaml").torch_source()
    relative = "specs/variants/2026/dcgan_generator_with_a_long_descriptive_file_name.yaml"
    header = cnngraph.load(spec).torch_source(relative).split('"""')[0]
    assert f"'{relative}'" in header
    assert max(len(line) for line in header.splitlines()) <= 100


def test_spec_strings_cannot_inject_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f"x\"\"\"\nimport os; open({str(marker)!r}, 'w')\n'''#"
    spec = {
        "cnngraph": 1,
        "name": evil,
        "description": evil,
        "input": [3, 8, 8],
        "blocks": {evil: {"layers": [{"op": "relu"}]}},
        "layers": {"a": {"block": evil}},
    }
    model = cnngraph.load(spec)
    source = model.torch_source(evil)
    module = model.to_module()
    assert not marker.exists()
    assert isinstance(module, torch.nn.Module)
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else str(node.module)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "torch", "math", "typing"}
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert "open" not in calls and "exec" not in calls and "eval" not in calls


def test_build_writes_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "net.py"
    assert main(["build", str(SPECS / "resnet18.yaml"), "-o", str(target)]) == 0
    namespace: dict[str, Any] = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)
    assert sum(p.numel() for p in namespace["Resnet18"]().parameters()) == 11_689_512
    bad = tmp_path / "bad.yaml"
    bad.write_text("cnngraph: 1\nname: b\ninput: [3, 8, 8]\nlayers: [{op: conv2}]\n")
    failed = tmp_path / "failed.py"
    assert main(["build", str(bad), "-o", str(failed)]) == 1
    assert not failed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "net.py"]
    assert "CG204" in capsys.readouterr().err


def test_stochastic_depth_acts_only_in_training() -> None:
    model = cnngraph.load(
        {
            "cnngraph": 1,
            "name": "sd",
            "input": [4, 2, 2],
            "layers": {"drop": {"op": "stochastic_depth", "p": 0.5}},
        }
    )
    module = model.to_module()
    x = torch.ones(64, 4, 2, 2)
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    torch.manual_seed(0)
    out = module(x)
    kept = out.flatten(1).amax(1)
    assert set(kept.tolist()) <= {0.0, 2.0} and 0 < kept.count_nonzero() < 64


# What each weight scheme means, from its definition: (std, bound or None) for fan-in and
# fan-out as torch counts them. `default` is torch's kaiming_uniform_(a=sqrt(5)).
_SCHEMES: dict[str, Any] = {
    "default": lambda i, o: ((1 / i) ** 0.5 / 3**0.5, (1 / i) ** 0.5),
    "kaiming_normal": lambda i, o: ((2 / o) ** 0.5, None),
    "kaiming_normal_fan_in": lambda i, o: ((2 / i) ** 0.5, None),
    "kaiming_uniform": lambda i, o: ((2 / i) ** 0.5, (6 / i) ** 0.5),
    "xavier_normal": lambda i, o: ((2 / (i + o)) ** 0.5, None),
    "xavier_uniform": lambda i, o: ((2 / (i + o)) ** 0.5, (6 / (i + o)) ** 0.5),
    "normal": lambda i, o: (0.01, None),
    "trunc_normal": lambda i, o: (0.01, None),
    "uniform_fan_out": lambda i, o: ((1 / o) ** 0.5 / 3**0.5, (1 / o) ** 0.5),
    "kaiming_uniform_fan_out_linear": lambda i, o: ((1 / o) ** 0.5, (3 / o) ** 0.5),
}


@pytest.mark.parametrize("scheme", cnngraph.spec.INIT_SCHEMES)
def test_every_init_scheme_gives_its_distribution(scheme: str) -> None:
    """Large layers, so that the sample std is within 3% of the scheme's (seed 0: within 0.3%)."""
    spec = {
        "cnngraph": 1,
        "name": "t",
        "input": [64, 4, 4],
        "init": {"conv2d": scheme, "linear": scheme},
        "layers": {
            "conv": {"op": "conv2d", "out_channels": 128, "kernel_size": 3},
            "pool": {"op": "adaptive_avg_pool2d", "output_size": 1},
            "flat": "flatten",
            "fc": {"op": "linear", "out_features": 768},
        },
    }
    torch.manual_seed(0)
    module = cnngraph.load(spec).to_module()
    for layer, fan_in, fan_out in [(module.conv, 64 * 9, 128 * 9), (module.fc, 128, 768)]:
        weight, bias = layer.weight.detach(), layer.bias.detach()
        if scheme in ("ones", "zeros"):
            assert torch.equal(weight, torch.full_like(weight, float(scheme == "ones")))
        else:
            std, bound = _SCHEMES[scheme](fan_in, fan_out)
            assert abs(weight.std().item() / std - 1) < 0.03
            assert abs(weight.mean().item()) < 0.05 * std
            if bound is not None:
                assert weight.abs().max().item() <= bound
        if scheme == "default":  # torch's bias init: uniform within 1/sqrt(fan_in)
            assert 0 < bias.abs().max().item() <= (1 / fan_in) ** 0.5
        else:
            assert torch.count_nonzero(bias) == 0


def test_init_rules_set_weights_and_biases_apart() -> None:
    def build(init: dict[str, Any]) -> Any:
        spec = {
            "cnngraph": 1,
            "name": "t",
            "input": [16],
            "init": {"linear": init},
            "layers": {"fc": {"op": "linear", "out_features": 64}},
        }
        torch.manual_seed(0)
        return cnngraph.load(spec).to_module().fc

    made_by_torch = build({"weight": "keep", "bias": "keep"})  # no reset_weights at all
    kept_bias = build({"weight": "zeros", "bias": "keep"})
    assert torch.count_nonzero(kept_bias.weight) == 0
    assert torch.equal(kept_bias.bias, made_by_torch.bias)
    kept_weight = build({"weight": "keep"})  # biases are zeroed unless kept
    assert torch.equal(kept_weight.weight, made_by_torch.weight)
    assert torch.count_nonzero(kept_weight.bias) == 0


def test_initial_weights_follow_the_spec() -> None:
    torch.manual_seed(0)
    module = cnngraph.load(SPECS / "resnet.yaml").to_module()
    conv = module.layer4[0].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.05  # He et al.
    text = (
        (SPECS / "resnet18.yaml")
        .read_text()
        .replace("bn2:   {op: batch_norm2d}", "bn2:   {op: batch_norm2d, init: zeros}")
    )
    zeroed = cnngraph.load(text).to_module()
    assert all(
        torch.count_nonzero(b.bn2.weight) == 0
        for layer in (zeroed.layer1, zeroed.layer4)
        for b in layer
    )
    assert torch.count_nonzero(zeroed.layer1[0].bn1.weight) > 0


# Layers with their own `init:`, in a block and in the model, beside a rule per op kind.
OWN_INIT = """
cnngraph: 1
name: own_init
input: [3, 32, 32]
params: {zero_init: true}
init: {conv2d: kaiming_normal}
blocks:
  basic:
    params: {out: int, stride: 1}
    layers:
      conv1: {op: conv2d, out_channels: $out, kernel_size: 3, stride: $stride, padding: 1,
              bias: false}
      bn1: batch_norm2d
      relu: {op: relu, inplace: true}
      conv2: {op: conv2d, out_channels: $out, kernel_size: 3, padding: 1, bias: false,
              init: xavier_uniform}
      bn2: {op: batch_norm2d, init: {weight: zeros, bias: keep}}
    residual: {projection: downsample}
    then: {op: relu}
layers:
  stem: {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1,
         init: {weight: normal, bias: zeros}}
  body:
    - {block: basic, out: 16}
    - {block: basic, out: 32, stride: 2}
  pool: {op: adaptive_avg_pool2d, output_size: 1}
  flatten: flatten
  fc: {op: linear, out_features: 10, init: uniform_fan_out}
"""


def test_layers_own_init_is_parametric_and_seeded_like_the_expansion() -> None:
    """The file takes its params (no snapshot), and a seed gives the weights of a module per
    compiled layer (the snapshot of the expansion, built independently of the definitions)."""
    model = cnngraph.load(OWN_INIT)
    source, takes_params = parametric(model, "own_init.yaml")
    assert takes_params
    assert (
        "zeros_layers: set[int] = {id(m.bn2) for m in self.modules() if isinstance(m, Basic)}"
        in (source)
    )
    ours = load_source(source, model.name).OwnInit
    reference = load_source(snapshot(model, "own_init.yaml", "reference"), model.name).OwnInit
    torch.manual_seed(0)
    built = ours().state_dict()
    torch.manual_seed(0)
    expected = reference().state_dict()
    assert list(built) == list(expected)
    assert [k for k in built if not torch.equal(built[k], expected[k])] == []
    assert torch.count_nonzero(built["body.1.bn2.weight"]) == 0


@pytest.mark.parametrize(
    "line",
    [
        "        widths = [8 * round(float32(w_0 * float32(float32(w_m) ** round(math.log(u / w_0)"
        " / math.log(w_m)))) / 8) for u in linear_widths if u > 0 and u < 100000]",
        "        total = first_stage_width * bottleneck_ratio + second_stage_width * ratio - 1"
        " + third_stage_width // group_width",
        "        return nn.Conv2d(in_channels, out_channels * expansion_ratio, kernel_size=(k, k),"
        " padding=[(k - 1) // 2, (k - 1) // 2], bias=not batch_norm)",
        "        x = (a - b) * (c_long_name_number_one + d_long_name_number_two) - (e - f)"
        " * (g + h) * (i - j) / (k + l)",
        "        AuxLogits: torch.Tensor = self.AuxLogits(Mixed_6e) if self.AuxLogits is not None"
        " else Mixed_6e",
        "        y = [first_long_value_name if some_condition_holds else second_long_value_name"
        " for some_condition_holds in conditions_list]",
        "        trunc_normal_layers: set[int] = {id(m.fc) for m in self.modules() if"
        " isinstance(m, InceptionAux)}",
    ],
)
def test_long_lines_are_broken_into_the_same_statement(line: str) -> None:
    import ast
    import textwrap

    from cnngraph.backends.pytorch.writer import wrap_long

    wrapped = wrap_long(line)
    assert max(len(part) for part in wrapped.splitlines()) <= 99
    same = ast.dump(ast.parse(textwrap.dedent(wrapped))) == ast.dump(ast.parse(line.strip()))
    assert same, wrapped


@pytest.mark.parametrize("kind", ["parametric", "snapshot"])
def test_training_only_heads_run_in_training_alone(kind: str) -> None:
    """Inception-v3's auxiliary head needs 299x299; inference, which skips it, takes 75x75
    (the input sizes the summary reports), in the parametric file and in a snapshot."""
    model = cnngraph.load(SPECS / "inception_v3.yaml")
    source = parametric(model, "inception_v3.yaml")[0] if kind == "parametric" else None
    source = source or snapshot(model, "inception_v3.yaml", "test")
    network = load_source(source, model.name).InceptionV3().eval()
    with torch.no_grad():
        assert tuple(network(torch.zeros(1, 3, 75, 75)).shape) == (1, 1000)
        logits, aux = network.train()(torch.zeros(2, 3, 299, 299))
    assert tuple(logits.shape) == tuple(aux.shape) == (2, 1000)
