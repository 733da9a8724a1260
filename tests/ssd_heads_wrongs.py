"""Right and deliberately wrong ``SSDHeads`` classes (notebook 07).

``GoodSSDHeads*`` are right; the small subclasses of ``GoodSSDHeads`` make the plausible student
mistakes that ``tests/test_checks_ssd.py`` lists in its ``WRONG`` table.
"""

from __future__ import annotations

import torch
from torch import nn


class GoodSSDHeads(nn.Module):
    """view, permute, reshape per map; the class attributes make the wrong variants."""

    kernel, padding, extra_classes = 3, 1, 0

    def __init__(self, in_channels, boxes_per_location, num_classes):
        super().__init__()
        self.num_classes = num_classes + self.extra_classes
        self.classification = nn.ModuleList(
            self._conv(c, b * self.num_classes) for c, b in zip(in_channels, boxes_per_location)
        )
        self.regression = nn.ModuleList(
            self._conv(c, b * 4) for c, b in zip(in_channels, boxes_per_location)
        )

    def _conv(self, in_channels, out_channels):
        return nn.Conv2d(in_channels, out_channels, self.kernel, padding=self.padding)

    def flatten(self, output, columns):
        n, _, h, w = output.shape
        return output.view(n, -1, columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, columns)

    def maps(self, features):
        return features

    def forward(self, features):
        features = self.maps(features)
        logits = [
            self.flatten(c(x), self.num_classes) for c, x in zip(self.classification, features)
        ]
        deltas = [self.flatten(c(x), 4) for c, x in zip(self.regression, features)]
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


class GoodSSDHeadsLoops(nn.Module):
    """Indexing the ModuleLists in a loop, padding="same", permute then flatten(1, 3)."""

    def __init__(self, in_channels, boxes_per_location, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.classification = nn.ModuleList()
        self.regression = nn.ModuleList()
        for c, b in zip(in_channels, boxes_per_location):
            self.classification.append(nn.Conv2d(c, b * num_classes, 3, padding="same"))
            self.regression.append(nn.Conv2d(c, 4 * b, kernel_size=3, padding=1))

    def forward(self, features):
        logits, deltas = [], []
        for k, x in enumerate(features):
            n, _, h, w = x.shape
            out = self.classification[k](x).view(n, -1, self.num_classes, h, w)
            logits.append(out.permute(0, 3, 4, 1, 2).flatten(1, 3))
            out = self.regression[k](x).view(n, -1, 4, h, w)
            deltas.append(out.permute(0, 3, 4, 1, 2).flatten(1, 3))
        return torch.cat(logits, 1), torch.cat(deltas, 1)


class HeadsOneByOne(GoodSSDHeads):
    kernel, padding = 1, 0


class HeadsUnpadded(GoodSSDHeads):
    padding = 0


class HeadsOutputsSwapped(GoodSSDHeads):
    def forward(self, features):
        logits, deltas = super().forward(features)
        return deltas, logits


class HeadsBoxesBeforeCells(GoodSSDHeads):
    """permute giving (N, b, h, w, X): box by box, then cell by cell."""

    def flatten(self, output, columns):
        n, _, h, w = output.shape
        return output.view(n, -1, columns, h, w).permute(0, 1, 3, 4, 2).reshape(n, -1, columns)


class HeadsNumbersFirst(GoodSSDHeads):
    """view (N, X, b, h, w) instead of (N, b, X, h, w)."""

    def flatten(self, output, columns):
        n, _, h, w = output.shape
        return output.view(n, columns, -1, h, w).permute(0, 3, 4, 2, 1).reshape(n, -1, columns)


class HeadsNoPermute(GoodSSDHeads):
    def flatten(self, output, columns):
        return output.reshape(len(output), -1, columns)


class HeadsColumnsFirst(GoodSSDHeads):
    def flatten(self, output, columns):
        n, _, h, w = output.shape
        return output.view(n, -1, columns, h, w).permute(0, 4, 3, 1, 2).reshape(n, -1, columns)


class HeadsMapsReversed(GoodSSDHeads):
    def forward(self, features):
        logits, deltas = [], []
        for k in reversed(range(len(features))):
            x = features[k]
            logits.append(self.flatten(self.classification[k](x), self.num_classes))
            deltas.append(self.flatten(self.regression[k](x), 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


class HeadsExtraBackground(GoodSSDHeads):
    """num_classes + 1: the background counted twice."""

    extra_classes = 1


class HeadsNoBackground(GoodSSDHeads):
    """num_classes - 1: the background left out."""

    extra_classes = -1


class HeadsSharedConv(GoodSSDHeads):
    """One convolution of each kind, repeated for every map."""

    def __init__(self, in_channels, boxes_per_location, num_classes):
        super().__init__(in_channels, boxes_per_location, num_classes)
        self.classification = nn.ModuleList([self.classification[0]] * len(in_channels))
        self.regression = nn.ModuleList([self.regression[0]] * len(in_channels))


class HeadsPythonLists(GoodSSDHeads):
    """Plain Python lists: the layers' parameters are not registered."""

    def __init__(self, in_channels, boxes_per_location, num_classes):
        nn.Module.__init__(self)
        self.num_classes = num_classes
        pairs = list(zip(in_channels, boxes_per_location))
        self.classification = [nn.Conv2d(c, b * num_classes, 3, padding=1) for c, b in pairs]
        self.regression = [nn.Conv2d(c, b * 4, 3, padding=1) for c, b in pairs]


class HeadsSoftmax(GoodSSDHeads):
    def forward(self, features):
        logits, deltas = super().forward(features)
        return logits.softmax(dim=-1), deltas


class HeadsBatchNorm(GoodSSDHeads):
    def __init__(self, in_channels, boxes_per_location, num_classes):
        super().__init__(in_channels, boxes_per_location, num_classes)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in in_channels)

    def maps(self, features):
        return [norm(x) for norm, x in zip(self.norms, features)]


class HeadsReLU(GoodSSDHeads):
    """A ReLU on the features before the predictors."""

    def maps(self, features):
        return [x.relu() for x in features]


class HeadsInEvalMode(GoodSSDHeads):
    def __init__(self, *args):
        super().__init__(*args)
        self.eval()
