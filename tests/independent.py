"""Torch models written out by hand from the papers, for the specs torchvision lacks: their
parameter counts, MACs and output shapes are what the specs must reproduce. Each follows its
paper, not the spec; only module order and names may differ."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def nin() -> nn.Module:
    def block(out: int, k: int, stride: int, padding: int) -> list[nn.Module]:
        return [
            nn.LazyConv2d(out, k, stride, padding),
            nn.ReLU(),
            nn.LazyConv2d(out, 1),
            nn.ReLU(),
            nn.LazyConv2d(out, 1),
            nn.ReLU(),
        ]

    return nn.Sequential(
        *block(96, 11, 4, 0),
        nn.MaxPool2d(3, 2),
        *block(256, 5, 1, 2),
        nn.MaxPool2d(3, 2),
        *block(384, 3, 1, 1),
        nn.MaxPool2d(3, 2),
        nn.Dropout(0.5),
        *block(10, 3, 1, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def autoencoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 7),
        nn.ConvTranspose2d(64, 32, 7),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
        nn.Sigmoid(),
    )


def vae_decoder() -> nn.Module:
    """beta-VAE's 64x64 decoder (Higgins et al. 2017, appendix), as one would write it."""
    return nn.Sequential(
        nn.Linear(32, 256),
        nn.ReLU(),
        nn.Linear(256, 64 * 4 * 4),
        nn.ReLU(),
        nn.Unflatten(1, (64, 4, 4)),
        nn.ConvTranspose2d(64, 64, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1),
        nn.Sigmoid(),
    )


class _UNet(nn.Module):
    def __init__(self, classes: int = 2, widths: tuple[int, ...] = (64, 128, 256, 512, 1024)):
        super().__init__()

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            )

        self.down = nn.ModuleList()
        cin = 1
        for width in widths:
            self.down.append(double(cin, width))
            cin = width
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(cin, width, 2, stride=2))
            self.convs.append(double(2 * width, width))
            cin = width
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips[:-1]), strict=True):
            x = conv(torch.cat([skip, up(x)], dim=1))
        out: torch.Tensor = self.head(x)
        return out


def unet() -> nn.Module:
    return _UNet()


class _PreActBlock(nn.Module):
    """He et al. 2016b, Fig. 4(e): BN-ReLU-conv twice; a 1x1 conv shortcut where shapes change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


def preact_resnet18() -> nn.Module:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_PreActBlock(cin, width, stride), _PreActBlock(width, width, 1)]
        cin = width
    layers += [
        nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(cin, 1000),
    ]
    return nn.Sequential(*layers)


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "nin": nin,
    "autoencoder": autoencoder,
    "vae_decoder": vae_decoder,
    "unet": unet,
    "preact_resnet18": preact_resnet18,
}
