"""The spec library as a table: each row is a spec (and param overrides) with the figures it
must reproduce, taken from something nobody here wrote: torchvision's published figures, the
papers' tables in the reference README, or a torch model written out in `independent.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cnngraph

from .conftest import SPECS


@dataclass(frozen=True)
class Row:
    id: str
    spec: str
    params: dict[str, Any] = field(default_factory=dict)
    # torchvision's builder of the same model: its figures are the reference, and its
    # state_dict must load with strict=True
    torchvision: str | None = None
    torchvision_kwargs: dict[str, Any] = field(default_factory=dict)
    # (params, MACs) from the reference README's table of paper figures
    paper: tuple[int, int] | None = None
    # name of a builder in independent.py, for models with neither
    independent: str | None = None
    output: tuple[int, ...] | dict[str, tuple[int, ...]] = (1000,)

    def load(self) -> cnngraph.Model:
        return cnngraph.load(SPECS / self.spec, params=self.params)

    def small_size(self) -> int:
        """A height and width the model takes, small to keep torch runs short: 64, or the
        smallest it takes where that is larger."""
        rules = self.load().input_size_rules
        assert rules is not None
        return max(64, rules[0].minimum)

    def torchvision_model(self, **overrides: Any) -> Any:
        """torchvision's model, in eval mode, with no weights."""
        import torchvision  # only the torch tests call this

        assert self.torchvision is not None
        build = getattr(torchvision.models, self.torchvision)
        return build(weights=None, **{**self.torchvision_kwargs, **overrides}).eval()


def _resnet(name: str, **params: Any) -> Row:
    return Row(name, "resnet.yaml", params, torchvision=name)


_VGG_ARCHS = {  # Table 1, columns A, B, D and E: (convolutions, channels) per stage
    11: [[1, 64], [1, 128], [2, 256], [2, 512], [2, 512]],
    13: [[2, 64], [2, 128], [2, 256], [2, 512], [2, 512]],
    16: [[2, 64], [2, 128], [3, 256], [3, 512], [3, 512]],
    19: [[2, 64], [2, 128], [4, 256], [4, 512], [4, 512]],
}
_EFFICIENTNET = {  # width, depth, resolution, dropout: torchvision's coefficients
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 288, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


def _efficientnet(variant: str) -> Row:
    width, depth, resolution, dropout = _EFFICIENTNET[variant]
    params: dict[str, Any] = {
        "width_mult": width,
        "depth_mult": depth,
        "resolution": resolution,
        "dropout": dropout,
    }
    if variant in ("b5", "b6", "b7"):
        params.update(norm_eps=0.001, norm_momentum=0.01)
    return Row(f"efficientnet_{variant}", "efficientnet.yaml", params, f"efficientnet_{variant}")


_REGNET = {  # depth, w_0, w_a, w_m, group_width: torchvision's regnet_* builders
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168),
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232),
}


def _regnet(name: str, depth: int, w_0: int, w_a: float, w_m: float, group_width: int) -> Row:
    """A RegNet from RegNet's four numbers and its group width, as torchvision builds it."""
    params: dict[str, Any] = {"depth": depth, "w_0": w_0, "w_a": w_a, "w_m": w_m}
    params |= {"group_width": group_width, "se_ratio": 0.25 if "_y_" in name else 0.0}
    return Row(name, "anynet.yaml", params, name)


ROWS = [
    Row("lenet5", "lenet5.yaml", paper=(61_706, 416_520), output=(10,)),
    Row("alexnet", "alexnet.yaml", torchvision="alexnet"),
    *(
        Row(f"vgg{n}{bn}", "vgg.yaml", {"arch": arch, "batch_norm": bool(bn)}, f"vgg{n}{bn}")
        for n, arch in _VGG_ARCHS.items()
        for bn in ("", "_bn")
    ),
    Row("nin", "nin.yaml", independent="nin", output=(10,)),
    Row(
        "googlenet",
        "googlenet.yaml",
        torchvision="googlenet",
        torchvision_kwargs={"init_weights": False, "aux_logits": False},
    ),
    Row(  # the auxiliary head on, as the reference counts its params; its MACs run in training
        "inception_v3",
        "inception_v3.yaml",
        torchvision="inception_v3",
        torchvision_kwargs={"init_weights": False},
        output={"logits": (1000,), "aux_logits": (1000,)},
    ),
    Row("resnet18_standalone", "resnet18.yaml", torchvision="resnet18"),
    _resnet("resnet18", block="basic", layers=[2, 2, 2, 2]),
    _resnet("resnet34", block="basic", layers=[3, 4, 6, 3]),
    _resnet("resnet50"),
    _resnet("resnet101", layers=[3, 4, 23, 3]),
    _resnet("resnet152", layers=[3, 8, 36, 3]),
    _resnet("resnext50_32x4d", groups=32, width_per_group=4),
    _resnet("wide_resnet50_2", width_per_group=128),
    _resnet("resnext101_32x8d", layers=[3, 4, 23, 3], groups=32, width_per_group=8),
    _resnet("resnext101_64x4d", layers=[3, 4, 23, 3], groups=64, width_per_group=4),
    _resnet("wide_resnet101_2", layers=[3, 4, 23, 3], width_per_group=128),
    Row("preact_resnet18", "preact_resnet18.yaml", independent="preact_resnet18"),
    Row("mobilenet_v1", "mobilenet_v1.yaml", paper=(4_231_976, 568_740_352)),
    Row("mobilenet_v2", "mobilenet_v2.yaml", torchvision="mobilenet_v2"),
    Row("mobilenet_v3_large", "mobilenet_v3.yaml", torchvision="mobilenet_v3_large"),
    Row("mobilenet_v3_small", "mobilenet_v3.yaml", {"arch": "small"}, "mobilenet_v3_small"),
    *(_efficientnet(variant) for variant in _EFFICIENTNET),
    Row("squeezenet1_0", "squeezenet.yaml", torchvision="squeezenet1_0"),
    Row("squeezenet1_1", "squeezenet.yaml", {"version": 1.1}, "squeezenet1_1"),
    *(
        Row(f"mnasnet{name}", "mnasnet.yaml", {"alpha": alpha}, f"mnasnet{name}")
        for name, alpha in (("0_5", 0.5), ("0_75", 0.75), ("1_0", 1.0), ("1_3", 1.3))
    ),
    *(
        Row(name, "shufflenet_v2.yaml", {"stages_out_channels": widths}, name)
        for name, widths in (
            ("shufflenet_v2_x0_5", [24, 48, 96, 192, 1024]),
            ("shufflenet_v2_x1_0", [24, 116, 232, 464, 1024]),
            ("shufflenet_v2_x1_5", [24, 176, 352, 704, 1024]),
            ("shufflenet_v2_x2_0", [24, 244, 488, 976, 2048]),
        )
    ),
    Row("densenet121", "densenet.yaml", torchvision="densenet121"),
    Row("densenet169", "densenet.yaml", {"block_config": [6, 12, 32, 32]}, "densenet169"),
    Row("densenet201", "densenet.yaml", {"block_config": [6, 12, 48, 32]}, "densenet201"),
    Row(
        "densenet161",
        "densenet.yaml",
        {"block_config": [6, 12, 36, 24], "growth_rate": 48, "num_init_features": 96},
        "densenet161",
    ),
    *(_regnet(name, *settings) for name, settings in _REGNET.items()),
    Row(  # the stages given, not generated
        "regnet_y_400mf_given_stages",
        "anynet.yaml",
        {
            "stages": [[1, 48, 8, 1.0], [3, 104, 8, 1.0], [6, 208, 8, 1.0], [6, 440, 8, 1.0]],
            "se_ratio": 0.25,
        },
        "regnet_y_400mf",
    ),
    Row(
        "dcgan_generator",
        "dcgan_generator.yaml",
        paper=(3_576_704, 104_628_224),
        output=(3, 64, 64),
    ),
    Row("autoencoder", "autoencoder.yaml", independent="autoencoder", output=(1, 28, 28)),
    Row("vae_decoder", "vae_decoder.yaml", independent="vae_decoder", output=(3, 64, 64)),
    Row("unet", "unet.yaml", independent="unet", output=(2, 256, 256)),
]
TORCHVISION_ROWS = [row for row in ROWS if row.torchvision]


def _one_heavy_row_per_spec(rows: list[Row]) -> list[Row]:
    """The rows, less the heavy ones (over 30M params) of a spec after its first heavy row:
    members of one family are built by the same code, and the largest take seconds each to
    initialize. Every row still has its figures, layout, strict load and outputs tested."""
    from .conftest import reference_rows

    reference = reference_rows()
    seen: set[str] = set()
    kept = []
    for row in rows:
        heavy = reference[row.torchvision or ""]["params"] > 30_000_000
        if not heavy or row.spec not in seen:
            kept.append(row)
        seen |= {row.spec} if heavy else set()
    return kept


# for the slower checks: seeded initial weights, the built file's load, the smallest input
SAMPLED_TORCHVISION_ROWS = _one_heavy_row_per_spec(TORCHVISION_ROWS)
