"""A compact encoder-decoder (U-Net-like) face parser, trained from scratch."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from triface_studio.core.semantics import NUM_CLASSES


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, groups=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ParserNet(nn.Module):
    """Input (B, 3, S, S) in [0, 1]; output (B, 19, S, S) logits.  S must be a multiple of 16."""

    def __init__(self, width: int = 24, num_classes: int = NUM_CLASSES):
        super().__init__()
        w = [width, width * 2, width * 4, width * 6, width * 8]
        self.width = width
        self.enc = nn.ModuleList([_block(3, w[0])] + [_block(w[i], w[i + 1]) for i in range(4)])
        self.dec = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in reversed(range(4))])
        self.head = nn.Conv2d(w[0], num_classes, 1)
        self.register_buffer("mean", torch.tensor([0.5, 0.45, 0.4]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * 2.0
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for dec in self.dec:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, s], 1))
        return self.head(x)
