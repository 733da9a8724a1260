"""Right and deliberately wrong ``ContextModule`` classes (notebook 10).

``GoodContextModule*`` are right; the small subclasses of ``GoodContextModule`` make the plausible
student mistakes that ``tests/test_checks_context_module.py`` lists in its ``WRONG`` table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GoodContextModule(nn.Module):
    """Loops and explicit indexing; the class attributes and methods make the wrong variants."""

    kernel, relu_after_last, centre = 3, True, (1, 1)

    def __init__(self, channels, dilations, identity_init=True):
        super().__init__()
        layers = []
        for index, d in enumerate(self.order(list(dilations))):
            layers.append(self.conv(channels, d))
            if index < len(dilations) - 1 or self.relu_after_last:
                layers.append(nn.ReLU())
        self.body = self.container(layers)
        self.out = nn.Conv2d(channels, channels, 1)
        self.dilations = tuple(dilations)
        if identity_init:
            self.identity_init(channels)

    def order(self, dilations):
        return dilations

    def conv(self, channels, d):
        return nn.Conv2d(channels, channels, self.kernel, padding=self.padding(d), dilation=d)

    def padding(self, d):
        return d * (self.kernel // 2)

    def container(self, layers):
        return nn.Sequential(*layers)

    def identity_init(self, channels):
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Conv2d):
                    layer.weight.zero_()
                    layer.bias.zero_()
                    self.centre_taps(layer.weight, channels)
            self.out.weight.zero_()
            self.out.bias.zero_()

    def centre_taps(self, weight, channels):
        for c in range(channels):
            weight[c, c, self.centre[0], self.centre[1]] = 1.0

    def forward(self, x):
        return x + self.out(self.body(x))


class GoodContextModuleInit(nn.Module):
    """nn.init.dirac_ and zeros_, padding="same", in-place ReLUs, a list comprehension."""

    def __init__(self, channels: int, dilations, identity_init: bool = True):
        super().__init__()
        self.dilations = tuple(dilations)
        pairs = [
            (nn.Conv2d(channels, channels, 3, padding="same", dilation=d), nn.ReLU(inplace=True))
            for d in self.dilations
        ]
        self.body = nn.Sequential(*[layer for pair in pairs for layer in pair])
        self.out = nn.Conv2d(channels, channels, kernel_size=1)
        if identity_init:
            for conv, _ in pairs:
                nn.init.dirac_(conv.weight)
                nn.init.zeros_(conv.bias)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x):
        residual = self.out(self.body(x))
        return residual + x


# ---------------------------------------------------------------------------- the layers


class ContextUnpadded(GoodContextModule):
    def padding(self, d):
        return 0


class ContextPaddingOne(GoodContextModule):
    def padding(self, d):
        return 1


class ContextReversed(GoodContextModule):
    def order(self, dilations):
        return dilations[::-1]


class ContextOneByOne(GoodContextModule):
    kernel, centre = 1, (0, 0)


class ContextNoBias(GoodContextModule):
    def conv(self, channels, d):
        return nn.Conv2d(channels, channels, 3, padding=d, dilation=d, bias=False)

    def identity_init(self, channels):
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Conv2d):
                    nn.init.dirac_(layer.weight)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)


class ContextBodyList(GoodContextModule):
    def container(self, layers):
        return layers

    def forward(self, x):
        h = x
        for layer in self.body:
            h = layer(h)
        return x + self.out(h)


class ContextModuleList(GoodContextModule):
    def container(self, layers):
        return nn.ModuleList(layers)

    def forward(self, x):
        h = x
        for layer in self.body:
            h = layer(h)
        return x + self.out(h)


class ContextWithoutReLU(GoodContextModule):
    def container(self, layers):
        return nn.Sequential(*[layer for layer in layers if isinstance(layer, nn.Conv2d)])


class ContextNoLastReLU(GoodContextModule):
    relu_after_last = False


class ContextDilationsList(GoodContextModule):
    def __init__(self, channels, dilations, identity_init=True):
        super().__init__(channels, dilations, identity_init)
        self.dilations = list(dilations)


# ---------------------------------------------------------------------------- the initialisation


class ContextCentreOnEveryChannel(GoodContextModule):
    def centre_taps(self, weight, channels):
        weight[:, :, 1, 1] = 1.0


class ContextCentreTopLeft(GoodContextModule):
    centre = (0, 0)


class ContextOutNotZeroed(GoodContextModule):
    def identity_init(self, channels):
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Conv2d):
                    nn.init.dirac_(layer.weight)
                    layer.bias.zero_()


class ContextBiasNotZeroed(GoodContextModule):
    def identity_init(self, channels):
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Conv2d):
                    nn.init.dirac_(layer.weight)
            self.out.weight.zero_()
            self.out.bias.zero_()


class ContextAlwaysIdentity(GoodContextModule):
    def __init__(self, channels, dilations, identity_init=True):
        super().__init__(channels, dilations, True)


# ---------------------------------------------------------------------------- forward


class ContextNoResidual(GoodContextModule):
    def forward(self, x):
        return self.out(self.body(x))


class ContextResidualBeforeOut(GoodContextModule):
    def forward(self, x):
        return self.out(x + self.body(x))


class ContextReLUAfterSum(GoodContextModule):
    def forward(self, x):
        return F.relu(x + self.out(self.body(x)))


class ContextFinalReLU(GoodContextModule):
    def forward(self, x):
        return x + F.relu(self.out(self.body(x)))


class ContextDetached(GoodContextModule):
    def forward(self, x):
        return x + self.out(self.body(x.detach()))


class ContextInEvalMode(GoodContextModule):
    def __init__(self, *args):
        super().__init__(*args)
        self.eval()
