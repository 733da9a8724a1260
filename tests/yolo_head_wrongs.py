"""Right and deliberately wrong ``YOLOHead`` classes (notebook 06).

``GoodYOLOHead*`` are right; the small subclasses of ``GoodYOLOHead`` make the plausible student
mistakes that ``tests/test_checks_yolo.py`` lists in its ``WRONG`` table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GoodYOLOHead(nn.Module):
    """The functional version; the class attributes make the wrong variants."""

    slope, hidden_size = 0.1, None

    def __init__(self, in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout):
        super().__init__()
        self.shape = (grid_size, grid_size, 5 * boxes_per_cell + num_classes)
        self.fc1 = nn.Linear(in_features, self.hidden_size or hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(self.hidden_size or hidden, math.prod(self.shape))

    def activation(self, x):
        return F.leaky_relu(x, self.slope)

    def forward(self, features):
        hidden = self.dropout(self.activation(self.fc1(features.flatten(1))))
        return self.fc2(hidden).view(-1, *self.shape)


class GoodYOLOHeadModules(nn.Module):
    """nn.Flatten and nn.LeakyReLU modules, dropout before the activation (the same thing),
    reshape with unflatten."""

    def __init__(self, in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(p=dropout)
        self.act = nn.LeakyReLU(negative_slope=0.1)
        self.fc2 = nn.Linear(hidden, grid_size**2 * (boxes_per_cell * 5 + num_classes))
        self.grid = grid_size

    def forward(self, x):
        out = self.fc2(self.act(self.dropout(self.fc1(self.flatten(x)))))
        return out.unflatten(1, (self.grid, self.grid, -1))


class HeadReLU(GoodYOLOHead):
    def activation(self, x):
        return F.relu(x)


class HeadNoActivation(GoodYOLOHead):
    def activation(self, x):
        return x


class HeadSlope001(GoodYOLOHead):
    slope = 0.01


class HeadWrongHidden(GoodYOLOHead):
    hidden_size = 512


class HeadDropoutFirst(GoodYOLOHead):
    def forward(self, features):
        hidden = self.activation(self.fc1(self.dropout(features.flatten(1))))
        return self.fc2(hidden).view(-1, *self.shape)


class HeadDropoutLast(GoodYOLOHead):
    def forward(self, features):
        hidden = self.activation(self.fc1(features.flatten(1)))
        return self.dropout(self.fc2(hidden)).view(-1, *self.shape)


class HeadDropoutUnused(GoodYOLOHead):
    def forward(self, features):
        return self.fc2(self.activation(self.fc1(features.flatten(1)))).view(-1, *self.shape)


class HeadWithoutDropout(HeadDropoutUnused):
    def __init__(self, *args):
        super().__init__(*args)
        del self.dropout


class HeadFixedDropout(GoodYOLOHead):
    def __init__(self, *args):
        super().__init__(*args)
        self.dropout = nn.Dropout(0.5)


class HeadChannelsFirst(GoodYOLOHead):
    def forward(self, features):
        out = self.fc2(self.dropout(self.activation(self.fc1(features.flatten(1)))))
        s, _, per_cell = self.shape
        return out.view(-1, per_cell, s, s)


class HeadSigmoid(GoodYOLOHead):
    def forward(self, features):
        return torch.sigmoid(super().forward(features))


class HeadNoFlatten(GoodYOLOHead):
    def forward(self, features):
        hidden = self.dropout(self.activation(self.fc1(features)))
        return self.fc2(hidden).view(-1, *self.shape)


class HeadBatchNorm(GoodYOLOHead):
    def __init__(self, in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout):
        super().__init__(in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout)
        self.norm = nn.BatchNorm1d(hidden)

    def activation(self, x):
        return F.leaky_relu(self.norm(x), 0.1)


class HeadInEvalMode(GoodYOLOHead):
    def __init__(self, *args):
        super().__init__(*args)
        self.eval()
