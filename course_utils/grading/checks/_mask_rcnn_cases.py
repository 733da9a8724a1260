"""The cases of the Mask R-CNN checks (``checks.mask_rcnn``; private: not a topic module).

Every case is small and deterministic (hand-drawn masks, fixed seeds). The values a threshold
reads are either exactly on it on purpose (the bins of exactly 0.5 in ``mask_targets``) or at
least 1e-3 away from it, and the grown boxes of ``paste_masks`` stay 1e-3 away from whole
pixels, so that float rounding decides nothing (the tests check).
"""

from __future__ import annotations

import torch

from course_utils.grading.checks._unet_cases import ModuleCase
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "canvas",
    "mask_head_cases",
    "mask_loss_cases",
    "mask_targets_cases",
    "paste_masks_cases",
]

_SEED = 1212

# ----------------------------------------------------------------------------------------------
# mask_targets
# ----------------------------------------------------------------------------------------------


def canvas(height: int, width: int, *shapes: tuple) -> torch.Tensor:
    """uint8 masks ``(G, height, width)``, one per shape: ``("rect", top, left, h, w)`` or
    ``("disk", cy, cx, r)``; a shape made of several is a tuple of them (``("union", a, b)``)."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def draw(shape: tuple) -> torch.Tensor:
        kind, *p = shape
        if kind == "union":
            return draw(p[0]) | draw(p[1])
        if kind == "rect":
            return (y >= p[0]) & (y < p[0] + p[2]) & (x >= p[1]) & (x < p[1] + p[3])
        return (y + 0.5 - p[0]) ** 2 + (x + 0.5 - p[1]) ** 2 <= p[2] ** 2

    return torch.stack([draw(shape) for shape in shapes]).to(torch.uint8)


_SCENE = (
    ("rect", 3, 2, 10, 9),
    ("disk", 9.0, 17.5, 5.2),
    ("union", ("rect", 12, 11, 5, 13), ("rect", 1, 20, 14, 4)),
)
_TARGET = (
    "rois = torch.cat([matched_idxs[:, None].float(), proposals], dim=1); soft = "
    "torchvision.ops.roi_align(gt_masks[:, None].float(), rois, (mask_size, mask_size), "
    "spatial_scale=1.0, aligned=True)[:, 0]; return (soft >= 0.5).float(). Keep roi_align's "
    "default sampling_ratio (adaptive)."
)


def _boxes(*rows: tuple[float, float, float, float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def mask_targets_cases() -> list[Case]:
    """The cases of ``check_mask_targets``: ``(gt_masks, proposals, matched_idxs, mask_size)``, on
    every available device."""
    scene = canvas(18, 26, *_SCENE)
    wide = canvas(14, 30, ("disk", 7.0, 6.0, 5.0), ("rect", 2, 14, 9, 12))
    cases = [
        Case(
            "one instance, one proposal around it, M = 6",
            (scene[:1], _boxes((0.3, 1.6, 14.7, 15.2)), torch.tensor([0]), 6),
            hint=_TARGET,
        ),
        Case(
            "three instances, three proposals matched to instances 2, 0 and 1 (not in order)",
            (
                scene,
                _boxes((10.4, 0.7, 24.9, 17.2), (0.8, 2.3, 12.1, 12.6), (11.3, 3.2, 22.8, 14.9)),
                torch.tensor([2, 0, 1]),
                6,
            ),
            hint="RoI p reads the mask of its matched instance, gt_masks[matched_idxs[p]], not "
            "gt_masks[p]: roi_align's first column (the 'batch index') is matched_idxs. " + _TARGET,
        ),
        Case(
            "five proposals on three instances: several RoIs share an instance",
            (
                scene,
                _boxes(
                    (2.2, 1.4, 9.6, 12.1),
                    (12.6, 4.1, 23.3, 15.7),
                    (0.3, 4.4, 13.8, 13.3),
                    (14.2, 0.6, 25.1, 17.4),
                    (17.7, 5.2, 20.9, 12.6),
                ),
                torch.tensor([0, 1, 0, 2, 1]),
                5,
            ),
            hint="There are more RoIs (P = 5) than instances (G = 3): index the masks with "
            "matched_idxs. " + _TARGET,
        ),
        Case(
            "a non-square 14 x 30 image (H x W), tall and wide proposals",
            (
                wide,
                _boxes((0.6, 1.3, 12.4, 12.7), (13.1, 1.2, 27.6, 11.9), (4.3, 0.4, 9.2, 13.6)),
                torch.tensor([0, 1, 0]),
                5,
            ),
            hint="Boxes are (x1, y1, x2, y2): x along the W = 30 columns, y along the H = 14 "
            "rows. " + _TARGET,
        ),
        Case(
            "proposals partly outside the image (negative corners, beyond the right and bottom)",
            (
                scene,
                _boxes((-3.6, -2.2, 8.4, 9.1), (16.3, 8.2, 29.7, 21.6), (-1.8, 6.3, 11.5, 19.4)),
                torch.tensor([0, 2, 0]),
                6,
            ),
            hint="Do not clip the boxes: roi_align reads outside the image as 0 (background), "
            "so a box's target keeps the object where it sits in the box. " + _TARGET,
        ),
        Case(
            "bins of exactly one pixel, shifted by half a pixel: some bins are exactly 0.5",
            (scene[:1], _boxes((0.5, 2.0, 12.5, 14.0)), torch.tensor([0]), 12),
            hint="A bin half on the object (roi_align gives exactly 0.5) is part of the object: "
            "threshold with >= 0.5, not > 0.5. With aligned=True pixel j's centre is at x = j + "
            "0.5, the course's convention (x2 one past the last pixel). " + _TARGET,
        ),
        Case(
            "a large proposal (25 x 17 pixels) for a small M = 4: many pixels per bin",
            (scene[2:], _boxes((3.7, 0.6, 28.7, 17.6)), torch.tensor([0]), 4),
            hint="With roi_align's default sampling_ratio (adaptive) each bin averages ceil(box "
            "side / M) x ceil(...) samples, enough to see all its pixels; sampling_ratio=2 reads "
            "only 2 x 2 of them. " + _TARGET,
        ),
        Case(
            "bool masks, M = 7",
            (
                scene.bool(),
                _boxes((1.1, 1.9, 12.3, 14.2), (9.8, 2.7, 25.3, 17.8)),
                torch.tensor([0, 2]),
                7,
            ),
            hint="Masks come as bool or uint8: convert them with .float() before roi_align "
            "(it takes float maps only). " + _TARGET,
        ),
        Case(
            "no positive RoI (P = 0): an empty (0, 6, 6) result",
            (scene[:2], torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 6),
            hint="With no RoI return torch.zeros(0, mask_size, mask_size) (float32, on the "
            "proposals' device); torch.stack of an empty list raises. " + _TARGET,
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------
# mask_loss
# ----------------------------------------------------------------------------------------------

_LOSS = (
    "Only channel labels[p] of RoI p is trained: own = mask_logits[torch.arange(P), labels] "
    "(P, M, M); return F.binary_cross_entropy_with_logits(own, mask_targets), the mean over all "
    "P * M * M pixels. With P = 0 return mask_logits.sum() * 0."
)


def _loss_inputs(
    g: torch.Generator, count: int, classes: int, size: int, scale: float, labels: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits (count, classes, size, size) * scale, 0/1 blob targets, the labels."""
    logits = torch.randn(count, classes, size, size, generator=g) * scale
    blobs = torch.randn(count, 1, 3, 3, generator=g)
    smooth = torch.nn.functional.interpolate(blobs, size=(size, size), mode="bilinear")
    targets = (smooth[:, 0] > 0).float()
    return logits, targets, torch.tensor(labels, dtype=torch.int64)


def mask_loss_cases() -> list[Case]:
    """The cases of ``check_mask_loss``: ``(mask_logits, mask_targets, labels)``, on every
    available device."""
    g = torch.Generator().manual_seed(_SEED)
    four = _loss_inputs(g, 4, 4, 6, 2.0, [2, 1, 3, 2])
    one = _loss_inputs(g, 1, 3, 5, 2.0, [2])
    confident = _loss_inputs(g, 3, 5, 4, 6.0, [4, 1, 3])
    ones = _loss_inputs(g, 3, 3, 5, 1.5, [1, 1, 1])
    soft_logits, soft, soft_labels = _loss_inputs(g, 2, 3, 4, 1.5, [2, 1])
    soft = torch.rand(soft.shape, generator=g)
    return with_device_copies(
        [
            Case(
                "4 RoIs, K + 1 = 4 channels (background and 3 classes), 6 x 6 masks",
                four,
                hint="mask_logits[torch.arange(P), labels] picks each RoI's own class: labels "
                "index the channels directly (channel 0 is background and never trained). " + _LOSS,
            ),
            Case("a single RoI of class 2 out of 3 channels", one, hint=_LOSS),
            Case(
                "confident logits (|x| up to about 20), 5 channels",
                confident,
                hint="Pass logits to F.binary_cross_entropy_with_logits: no sigmoid before it "
                "(it applies its own, stably), no softmax over the classes. " + _LOSS,
            ),
            Case(
                "every RoI of class 1",
                ones,
                hint="labels hold the ground-truth classes 1..K of the positive RoIs. " + _LOSS,
            ),
            Case(
                "soft targets in [0, 1] (torchvision's project_masks_on_boxes gives such)",
                (soft_logits, soft, soft_labels),
                hint="Binary cross-entropy takes targets in [0, 1]: do not round or threshold "
                "them. " + _LOSS,
            ),
            Case(
                "no positive RoI (P = 0): mask_logits of shape (0, 3, 5, 5)",
                (torch.zeros(0, 3, 5, 5), torch.zeros(0, 5, 5), torch.zeros(0, dtype=torch.int64)),
                hint="The mean of no value is nan: with P = 0 return mask_logits.sum() * 0, a "
                "zero that keeps the graph (torchvision's maskrcnn_loss does the same).",
            ),
        ]
    )


# ----------------------------------------------------------------------------------------------
# MaskHead
# ----------------------------------------------------------------------------------------------

_HEAD = (
    "MaskHead(in_channels, num_classes, conv_channels, num_convs): self.convs = "
    "nn.Sequential(Conv2d(in_channels, conv_channels, 3, padding=1), ReLU(), Conv2d(conv_channels, "
    "conv_channels, 3, padding=1), ReLU(), ...) with num_convs convolutions; self.upsample = "
    "nn.ConvTranspose2d(c, conv_channels, 2, stride=2) (c = conv_channels, or in_channels when "
    "num_convs = 0); self.predictor = nn.Conv2d(conv_channels, num_classes, 1); every weight "
    "nn.init.kaiming_normal_(w, mode='fan_out', nonlinearity='relu'), every bias zero. forward: "
    "self.predictor(F.relu(self.upsample(self.convs(x))))."
)


def mask_head_cases() -> list[Case]:
    """The cases of ``check_MaskHead``: ``(in_channels, num_classes, conv_channels, num_convs)``,
    CPU only; each runs on a (3, in_channels, 5, 7) batch of RoI features."""
    state = torch.get_rng_state()
    return [
        ModuleCase(
            "MaskHead(8, 4, 16, 2): two convolutions of 16 channels, 4 classes",
            (8, 4, 16, 2),
            hint=_HEAD,
            rng_state=state,
        ),
        ModuleCase(
            "MaskHead(6, 3, 8, 3): three convolutions",
            (6, 3, 8, 3),
            hint="Build num_convs (Conv2d, ReLU) pairs, not a fixed number. " + _HEAD,
            rng_state=state,
        ),
        ModuleCase(
            "MaskHead(5, 2, 12, 1): a single convolution",
            (5, 2, 12, 1),
            hint="Use every argument: in_channels for the first layer, conv_channels for the "
            "others, num_classes for the predictor. " + _HEAD,
            rng_state=state,
        ),
        ModuleCase(
            "MaskHead(4, 3, 6, 0): no convolution, the transposed one reads in_channels",
            (4, 3, 6, 0),
            hint="With num_convs = 0, self.convs is an empty nn.Sequential() (it returns its "
            "input) and self.upsample maps in_channels -> conv_channels. " + _HEAD,
            rng_state=state,
        ),
        ModuleCase(
            "MaskHead(32, 8, 32, 2): layers large enough to measure the initialisation",
            (32, 8, 32, 2),
            hint="Initialise every convolution (the transposed one and the predictor too) with "
            "torchvision's weights, nn.init.kaiming_normal_(layer.weight, mode='fan_out', "
            "nonlinearity='relu'), and zero biases, nn.init.zeros_(layer.bias). " + _HEAD,
            rng_state=state,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# paste_masks
# ----------------------------------------------------------------------------------------------

_PASTE = (
    "Pad each M x M mask with one pixel of zeros (F.pad(masks, (1, 1, 1, 1))), grow its box about "
    "its centre by s = (M + 2) / M (half-width (x2 - x1) * 0.5 * s) and truncate the corners to "
    "ints with .long() (toward zero); resize the padded mask with F.interpolate(..., size=(y2 - "
    "y1 + 1, x2 - x1 + 1), mode='bilinear', align_corners=False) and copy it to rows y1..y2, "
    "columns x1..x2 (both included), clipped to the image."
)


def _probabilities(g: torch.Generator, count: int, size: int) -> torch.Tensor:
    """Smooth mask probabilities (count, size, size), kept 1e-3 away from the thresholds."""
    return torch.rand(count, size, size, generator=g) * 0.9 + 0.05


def paste_masks_cases() -> list[Case]:
    """The cases of ``check_paste_masks``: ``(masks, boxes, image_size)`` and maybe
    ``threshold=``, on every available device."""
    g = torch.Generator().manual_seed(_SEED + 1)
    three = _probabilities(g, 3, 5)
    outside = _boxes((-3.3, 2.2, 7.6, 9.1), (12.4, -2.7, 21.3, 6.2), (14.6, 8.7, 27.1, 17.3))
    cases = [
        Case(
            "one 5 x 5 mask in a box inside a 16 x 20 image",
            (_probabilities(g, 1, 5), _boxes((4.3, 3.6, 13.3, 11.2)), (16, 20)),
            hint=_PASTE,
        ),
        Case(
            "three masks, boxes partly outside the image (left, top, right and bottom)",
            (three, outside, (14, 22)),
            hint="Clip the pasted rows and columns to the image: rows max(y1, 0) .. min(y2 + 1, "
            "H), and the same part of the resized mask (from row max(y1, 0) - y1). " + _PASTE,
        ),
        Case(
            "a non-square 12 x 30 image (H x W), a wide and a tall box, M = 7",
            (
                _probabilities(g, 2, 7),
                _boxes((2.2, 1.3, 25.4, 9.6), (26.3, 0.6, 29.2, 11.2)),
                (12, 30),
            ),
            hint="image_size is (H, W); boxes are (x1, y1, x2, y2), x along the columns; the "
            "mask's rows follow y. " + _PASTE,
        ),
        Case(
            "threshold=0.5: a bool result",
            (three, outside, (14, 22)),
            kwargs={"threshold": 0.5},
            hint="With a threshold return the pasted probabilities >= threshold (bool). " + _PASTE,
        ),
        Case(
            "threshold=0.3, M = 4, a box much larger than its mask",
            (
                _probabilities(g, 2, 4),
                _boxes((1.7, 2.4, 19.8, 15.3), (6.1, 1.3, 9.4, 4.6)),
                (18, 22),
            ),
            kwargs={"threshold": 0.3},
            hint="Use the threshold given (>= threshold), not 0.5. " + _PASTE,
        ),
        Case(
            "a box narrower than a pixel: the mask still covers at least one column",
            (_probabilities(g, 1, 3), _boxes((5.2, 2.3, 5.6, 8.7)), (10, 10)),
            hint="A box of width x2 - x1 + 1 < 1 after truncation still gets max(width, 1) "
            "pixels. " + _PASTE,
        ),
        Case(
            "no detection (N = 0): an empty (0, 8, 9) result",
            (torch.zeros(0, 5, 5), torch.zeros(0, 4), (8, 9)),
            hint="With no mask return masks.new_zeros((0, H, W)). " + _PASTE,
        ),
    ]
    return with_device_copies(cases)
