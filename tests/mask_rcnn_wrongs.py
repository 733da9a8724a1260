"""Right and deliberately wrong Mask R-CNN parts (notebook 12): ``mask_targets``, ``mask_loss``,
``MaskHead`` and ``paste_masks``.

``good_*`` and ``Good*`` are right, written differently from the references; every other
function or class makes one plausible student mistake, listed in the ``WRONG`` table of
``tests/test_checks_mask_rcnn.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes
from torchvision.ops import masks_to_boxes, roi_align

# ---------------------------------------------------------------------------- mask_targets


def _targets(gt_masks, proposals, idxs, size, *, aligned=True, scale=1.0, ratio=-1, cut=0.5):
    rois = torch.cat([idxs[:, None].to(proposals.dtype), proposals], dim=1)
    soft = roi_align(gt_masks[:, None].float(), rois, (size, size), scale, ratio, aligned)
    return (soft[:, 0] >= cut).float()


def good_mask_targets_loop(gt_masks, proposals, matched_idxs, mask_size):
    """One RoI at a time, each on its own instance (batch index 0)."""
    out = torch.zeros(len(proposals), mask_size, mask_size, device=proposals.device)
    for p in range(len(proposals)):
        mask = gt_masks[matched_idxs[p]][None, None].float()
        box = torch.cat([proposals.new_zeros(1), proposals[p]])[None]
        soft = roi_align(mask, box, output_size=mask_size, spatial_scale=1.0, aligned=True)
        out[p] = (soft[0, 0] >= 0.5).float()
    return out


def good_mask_targets_torchvision(gt_masks, proposals, matched_idxs, mask_size):
    """torchvision's aligned=False crop of the boxes shifted by half a pixel is aligned=True's."""
    soft = project_masks_on_boxes(gt_masks, proposals - 0.5, matched_idxs, mask_size)
    return (soft >= 0.5).to(torch.float32)


def targets_own_box(gt_masks, proposals, matched_idxs, mask_size):
    boxes = masks_to_boxes(gt_masks.bool())[matched_idxs]
    return _targets(gt_masks, boxes, matched_idxs, mask_size)


def targets_xy_swapped(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals[:, [1, 0, 3, 2]], matched_idxs, mask_size)


def targets_not_aligned(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size, aligned=False)


def targets_strictly_above(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size, cut=0.5 + 1e-7)


def targets_inverted(gt_masks, proposals, matched_idxs, mask_size):
    return 1 - _targets(gt_masks, proposals, matched_idxs, mask_size)


def targets_by_position(gt_masks, proposals, matched_idxs, mask_size):
    rows = torch.arange(len(proposals), device=proposals.device)
    return _targets(gt_masks[rows], proposals, rows, mask_size)


def targets_soft(gt_masks, proposals, matched_idxs, mask_size):
    rois = torch.cat([matched_idxs[:, None].float(), proposals], dim=1)
    return roi_align(gt_masks[:, None].float(), rois, (mask_size, mask_size), 1.0, -1, True)[:, 0]


def targets_nearest_crop(gt_masks, proposals, matched_idxs, mask_size):
    height, width = gt_masks.shape[-2:]
    out = []
    for box, index in zip(proposals.round().long().tolist(), matched_idxs.tolist()):
        x1, y1 = min(max(box[0], 0), width - 1), min(max(box[1], 0), height - 1)
        x2, y2 = max(min(box[2], width), x1 + 1), max(min(box[3], height), y1 + 1)
        crop = gt_masks[index, y1:y2, x1:x2][None, None].float()
        out.append(F.interpolate(crop, size=(mask_size, mask_size), mode="nearest")[0, 0])
    return torch.stack(out) if out else proposals.new_zeros(0, mask_size, mask_size)


def targets_feature_scale(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size, scale=0.25)


def targets_bool(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size).bool()


def targets_fixed_size(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, 28)


def targets_sampling_two(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size, ratio=2)


def targets_whole_mask(gt_masks, proposals, matched_idxs, mask_size):
    masks = gt_masks[matched_idxs][:, None].float()
    return (F.interpolate(masks, size=(mask_size, mask_size), mode="bilinear")[:, 0] >= 0.5).float()


def targets_uint8(gt_masks, proposals, matched_idxs, mask_size):
    rois = torch.cat([matched_idxs[:, None].float(), proposals], dim=1)
    return (roi_align(gt_masks[:, None], rois, mask_size, 1.0, aligned=True)[:, 0] >= 0.5).float()


def targets_stacked(gt_masks, proposals, matched_idxs, mask_size):
    return torch.stack(
        [good_mask_targets_loop(gt_masks, box[None], idx[None], mask_size)[0]
         for box, idx in zip(proposals, matched_idxs)]
    )  # fmt: skip


def targets_on_cpu(gt_masks, proposals, matched_idxs, mask_size):
    return _targets(gt_masks, proposals, matched_idxs, mask_size).cpu()


# ---------------------------------------------------------------------------- mask_loss


def _own(mask_logits, labels):
    return mask_logits[torch.arange(len(labels), device=labels.device), labels]


def good_mask_loss_formula(mask_logits, mask_targets, labels):
    """The formula with logsigmoid, which is stable; a zero that keeps the graph when empty."""
    if len(labels) == 0:
        return mask_logits.sum() * 0
    x = _own(mask_logits, labels)
    pixel = -(mask_targets * F.logsigmoid(x) + (1 - mask_targets) * F.logsigmoid(-x))
    return pixel.mean()


def good_mask_loss_gather(mask_logits, mask_targets, labels):
    """gather along the channels, sum then divide by the number of pixels."""
    if mask_targets.numel() == 0:
        return mask_logits.sum() * 0
    index = labels[:, None, None, None].expand(-1, 1, *mask_logits.shape[2:])
    own = mask_logits.gather(1, index)[:, 0]
    loss = F.binary_cross_entropy_with_logits(own, mask_targets, reduction="sum")
    return loss / mask_targets.numel()


def _bce(x, t, **kwargs):
    if t.numel() == 0:
        return x.sum() * 0
    return F.binary_cross_entropy_with_logits(x, t, **kwargs)


def loss_softmax(mask_logits, mask_targets, labels):
    target = (mask_targets * labels[:, None, None]).long()
    return F.cross_entropy(mask_logits, target) if len(labels) else mask_logits.sum() * 0


def loss_all_channels(mask_logits, mask_targets, labels):
    return _bce(mask_logits, mask_targets[:, None].expand_as(mask_logits))


def loss_one_hot(mask_logits, mask_targets, labels):
    one_hot = F.one_hot(labels, mask_logits.shape[1]).float()[:, :, None, None]
    return _bce(mask_logits, one_hot * mask_targets[:, None])


def loss_background_too(mask_logits, mask_targets, labels):
    x = torch.cat([_own(mask_logits, labels), mask_logits[:, 0]])
    return _bce(x, torch.cat([mask_targets, torch.zeros_like(mask_targets)]))


def loss_highest_channel(mask_logits, mask_targets, labels):
    return _bce(mask_logits.max(dim=1).values, mask_targets)


def loss_predicted_class(mask_logits, mask_targets, labels):
    predicted = mask_logits.mean(dim=(2, 3)).argmax(dim=1)
    return _bce(_own(mask_logits, predicted), mask_targets)


def loss_sum(mask_logits, mask_targets, labels):
    return _bce(_own(mask_logits, labels), mask_targets, reduction="sum")


def loss_sigmoid_twice(mask_logits, mask_targets, labels):
    return _bce(_own(mask_logits, labels).sigmoid(), mask_targets)


def loss_sum_of_roi_means(mask_logits, mask_targets, labels):
    own = _own(mask_logits, labels)
    per_pixel = F.binary_cross_entropy_with_logits(own, mask_targets, reduction="none")
    return per_pixel.mean(dim=(1, 2)).sum()


def loss_mean_of_roi_sums(mask_logits, mask_targets, labels):
    own = _own(mask_logits, labels)
    per_pixel = F.binary_cross_entropy_with_logits(own, mask_targets, reduction="none")
    return per_pixel.sum(dim=(1, 2)).mean() if len(labels) else mask_logits.sum() * 0


def loss_nan_when_empty(mask_logits, mask_targets, labels):
    return F.binary_cross_entropy_with_logits(_own(mask_logits, labels), mask_targets)


def loss_labels_minus_one(mask_logits, mask_targets, labels):
    return _bce(_own(mask_logits, labels - 1), mask_targets)


def loss_item(mask_logits, mask_targets, labels):
    return float(_bce(_own(mask_logits, labels), mask_targets))


def loss_per_roi(mask_logits, mask_targets, labels):
    own = _own(mask_logits, labels)
    return F.binary_cross_entropy_with_logits(own, mask_targets, reduction="none").mean(dim=(1, 2))


def loss_new_zero(mask_logits, mask_targets, labels):
    if len(labels) == 0:
        return torch.tensor(0.0)
    return _bce(_own(mask_logits, labels), mask_targets)


# ---------------------------------------------------------------------------- MaskHead


class GoodMaskHead(nn.Module):
    """Layers built in a loop; the class attributes and methods make the wrong variants."""

    kernel, padding, up_kernel, up_stride = 3, 1, 2, 2

    def __init__(self, in_channels, num_classes, conv_channels, num_convs):
        super().__init__()
        layers, channels = [], in_channels
        for _ in range(self.count(num_convs)):
            layers += self.block(channels, self.width(conv_channels))
            channels = self.width(conv_channels)
        self.convs = self.container(layers)
        self.upsample = nn.ConvTranspose2d(
            channels, self.width(conv_channels), self.up_kernel, stride=self.up_stride
        )
        self.predictor = nn.Conv2d(self.width(conv_channels), num_classes, 1)
        self.initialise()

    def count(self, num_convs):
        return num_convs

    def width(self, conv_channels):
        return conv_channels

    def block(self, c_in, c_out):
        return [nn.Conv2d(c_in, c_out, self.kernel, padding=self.padding), nn.ReLU(inplace=True)]

    def container(self, layers):
        return nn.Sequential(*layers)

    def initialise(self):
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.predictor(F.relu(self.upsample(self.convs(x))))


class GoodMaskHeadFunctional(nn.Module):
    """padding="same", nn.init per layer, the ReLU as a module call in forward."""

    def __init__(self, in_channels: int, num_classes: int, conv_channels: int, num_convs: int):
        super().__init__()
        layers = []
        for index in range(num_convs):
            source = in_channels if index == 0 else conv_channels
            layers.append(nn.Conv2d(source, conv_channels, kernel_size=3, padding="same"))
            layers.append(nn.ReLU())
        self.convs = nn.Sequential(*layers)
        up_in = conv_channels if num_convs else in_channels
        self.upsample = nn.ConvTranspose2d(up_in, conv_channels, kernel_size=2, stride=2)
        self.predictor = nn.Conv2d(conv_channels, num_classes, kernel_size=1)
        for name, parameter in self.named_parameters():
            if name.endswith("weight"):
                nn.init.kaiming_normal_(parameter, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.constant_(parameter, 0.0)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.convs(x)
        x = self.relu(self.upsample(x))
        return self.predictor(x)


class HeadNoReluAfterUpsample(GoodMaskHead):
    def forward(self, x):
        return self.predictor(self.upsample(self.convs(x)))


class HeadStrideOne(GoodMaskHead):
    up_stride = 1


class HeadKernelThree(GoodMaskHead):
    up_kernel = 3


class HeadTwoConvsAlways(GoodMaskHead):
    def count(self, num_convs):
        return 2


class HeadUnpadded(GoodMaskHead):
    padding = 0


class HeadSigmoid(GoodMaskHead):
    def forward(self, x):
        return super().forward(x).sigmoid()


class HeadReluAfterPredictor(GoodMaskHead):
    def forward(self, x):
        return F.relu(super().forward(x))


class HeadNoBias(GoodMaskHead):
    def block(self, c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.ReLU()]


class HeadTorchvisionNames(GoodMaskHead):
    """torchvision's names: mask_fcn..., conv5_mask, mask_fcn_logits."""

    def __init__(self, *args):
        super().__init__(*args)
        self.mask_fcn, self.conv5_mask, self.mask_fcn_logits = (
            self.convs,
            self.upsample,
            self.predictor,
        )
        del self.convs, self.upsample, self.predictor

    def forward(self, x):
        return self.mask_fcn_logits(F.relu(self.conv5_mask(self.mask_fcn(x))))


class HeadFixedWidth(GoodMaskHead):
    def width(self, conv_channels):
        return 256


class HeadModuleList(GoodMaskHead):
    def container(self, layers):
        return nn.ModuleList(layer for layer in layers if isinstance(layer, nn.Conv2d))

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.predictor(F.relu(self.upsample(x)))


class HeadNoReluInConvs(GoodMaskHead):
    def block(self, c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1)]


class HeadDefaultInit(GoodMaskHead):
    def initialise(self):
        pass


class HeadPredictorBias(GoodMaskHead):
    """torchvision's MaskRCNNPredictor: kaiming weights, but biases left at PyTorch's default."""

    def initialise(self):
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module is not self.predictor:
                    nn.init.zeros_(module.bias)


class HeadInEvalMode(GoodMaskHead):
    def __init__(self, *args):
        super().__init__(*args)
        self.eval()


class HeadDetached(GoodMaskHead):
    def forward(self, x):
        return super().forward(x.detach())


# ---------------------------------------------------------------------------- paste_masks


def good_paste_masks_torchvision(masks, boxes, image_size, threshold=None):
    pasted = paste_masks_in_image(masks[:, None], boxes, image_size, padding=1)[:, 0]
    return pasted if threshold is None else pasted >= threshold


_RIGHT = {
    "padding": 1,
    "grow": True,
    "mode": "bilinear",
    "corners": False,
    "extra": 1,
    "rounding": "trunc",
    "clip": True,
    "swap": False,
    "transpose": False,
}


def _paste(masks, boxes, image_size, threshold=None, **knobs):
    """A readable paste with one knob per mistake (the defaults are right)."""
    knobs = {**_RIGHT, **knobs}
    padding, grow, mode, corners = (knobs[k] for k in ("padding", "grow", "mode", "corners"))
    extra, rounding, clip = knobs["extra"], knobs["rounding"], knobs["clip"]
    swap, transpose = knobs["swap"], knobs["transpose"]
    size = masks.shape[-1]
    masks = F.pad(masks.transpose(1, 2) if transpose else masks, (padding,) * 4)
    boxes = boxes[:, [1, 0, 3, 2]] if swap else boxes
    scale = (size + 2 * padding) / size if grow else 1.0
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    centre = (boxes[:, 2:] + boxes[:, :2]) * 0.5
    grown = torch.cat([centre - half, centre + half], dim=1)
    grown = {"trunc": grown, "floor": grown.floor(), "round": grown.round()}[rounding].long()
    out = masks.new_zeros((len(masks), *image_size))
    for n, (x1, y1, x2, y2) in enumerate(grown.tolist()):
        w, h = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)
        options = {"align_corners": corners} if mode == "bilinear" else {}
        resized = F.interpolate(masks[n][None, None], size=(h, w), mode=mode, **options)[0, 0]
        if not clip:
            out[n, y1 : y1 + h, x1 : x1 + w] = resized
            continue
        top, left = max(y1, 0), max(x1, 0)
        bottom, right = min(y1 + h, image_size[0]), min(x1 + w, image_size[1])
        out[n, top:bottom, left:right] = resized[top - y1 : bottom - y1, left - x1 : right - x1]
    return out if threshold is None else out >= threshold


def paste_no_padding(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, padding=0)


def paste_box_not_grown(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, grow=False)


def paste_xy_swapped(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, swap=True)


def paste_transposed(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, transpose=True)


def paste_nearest(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, mode="nearest")


def paste_align_corners(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, corners=True)


def paste_exclusive(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, extra=0)


def paste_floor(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, rounding="floor")


def paste_round(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, rounding="round")


def paste_unclipped(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold, clip=False)


def paste_always_threshold(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, 0.5 if threshold is None else threshold)


def paste_threshold_ignored(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size)


def paste_half_threshold(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, None if threshold is None else 0.5)


def paste_stacked(masks, boxes, image_size, threshold=None):
    return torch.stack(
        [_paste(mask[None], box[None], image_size, threshold)[0] for mask, box in zip(masks, boxes)]
    )


def paste_on_cpu(masks, boxes, image_size, threshold=None):
    return _paste(masks, boxes, image_size, threshold).cpu()
