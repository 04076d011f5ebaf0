"""The spec library as a table: each row is a spec (and param overrides) with the figures it
must reproduce, taken from something nobody here wrote: torchvision's published figures, the
papers' tables in the reference README, or a torch model written out in `independent.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    output: tuple[int, ...] = (1000,)


def _resnet(name: str, **params: Any) -> Row:
    return Row(name, "resnet.yaml", params, torchvision=name)


ROWS = [
    Row("lenet5", "lenet5.yaml", paper=(61_706, 416_520), output=(10,)),
    Row("alexnet", "alexnet.yaml", torchvision="alexnet"),
    *(
        Row(
            f"vgg{depth}{suffix}",
            "vgg.yaml",
            {"arch": arch, "batch_norm": bool(suffix)},
            torchvision=f"vgg{depth}{suffix}",
        )
        for depth, arch in (
            (11, [[1, 64], [1, 128], [2, 256], [2, 512], [2, 512]]),
            (13, [[2, 64], [2, 128], [2, 256], [2, 512], [2, 512]]),
            (16, [[2, 64], [2, 128], [3, 256], [3, 512], [3, 512]]),
            (19, [[2, 64], [2, 128], [4, 256], [4, 512], [4, 512]]),
        )
        for suffix in ("", "_bn")
    ),
    Row("nin", "nin.yaml", independent="nin", output=(10,)),
    Row(
        "googlenet",
        "googlenet.yaml",
        torchvision="googlenet",
        torchvision_kwargs={"init_weights": False, "aux_logits": False},
    ),
    Row("resnet18", "resnet18.yaml", torchvision="resnet18"),
    _resnet("resnet18", block="basic", layers=[2, 2, 2, 2]),
    _resnet("resnet34", block="basic", layers=[3, 4, 6, 3]),
    _resnet("resnet50"),
    _resnet("resnet101", layers=[3, 4, 23, 3]),
    _resnet("resnet152", layers=[3, 8, 36, 3]),
    _resnet("resnext50_32x4d", groups=32, width_per_group=4),
    _resnet("wide_resnet50_2", width_per_group=128),
    Row("preact_resnet18", "preact_resnet18.yaml", independent="preact_resnet18"),
    Row("mobilenet_v1", "mobilenet_v1.yaml", paper=(4_231_976, 568_740_352)),
    Row("mobilenet_v2", "mobilenet_v2.yaml", torchvision="mobilenet_v2"),
    Row("mobilenet_v3_large", "mobilenet_v3.yaml", torchvision="mobilenet_v3_large"),
    Row(
        "mobilenet_v3_small",
        "mobilenet_v3.yaml",
        {"arch": "small"},
        torchvision="mobilenet_v3_small",
    ),
    Row(
        "dcgan_generator",
        "dcgan_generator.yaml",
        paper=(3_576_704, 104_628_224),
        output=(3, 64, 64),
    ),
    Row("autoencoder", "autoencoder.yaml", independent="autoencoder", output=(1, 28, 28)),
    Row("unet", "unet.yaml", independent="unet", output=(2, 256, 256)),
]
