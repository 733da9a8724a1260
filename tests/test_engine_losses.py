"""course_utils.engine.losses: the loss functions and how fit reads what they return."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors

from course_utils.engine import classification_loss, segmentation_loss
from course_utils.engine.losses import total_loss


def test_classification_loss_is_cross_entropy():
    model = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    assert torch.allclose(classification_loss(model, (x, y)), F.cross_entropy(model(x), y))


class HalfResolution(nn.Module):
    """(B, 3, H, W) -> {"out": (B, 4, H/2, W/2)} (plus ``"aux"`` = -out when ``aux``)."""

    def __init__(self, aux):
        super().__init__()
        self.conv, self.aux = nn.Conv2d(3, 4, 1, stride=2), aux

    def forward(self, x):
        out = self.conv(x)
        return {"out": out, "aux": -out} if self.aux else {"out": out}


def _expected_cross_entropy(logits, masks):
    """Cross-entropy of (B, C, h, w) logits up-sampled to the (B, H, W) masks, 255 ignored."""
    logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    keep = masks != 255
    return F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], masks[keep])


def test_segmentation_loss_upsamples_ignores_255_and_weights_aux():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    masks = torch.randint(0, 4, (2, 8, 8))
    masks[:, :4] = 255
    model = HalfResolution(aux=False)
    expected = _expected_cross_entropy(model.conv(images), masks)
    assert torch.allclose(segmentation_loss(model, (images, tv_tensors.Mask(masks))), expected)
    assert torch.allclose(segmentation_loss(model, (images, masks[:, None])), expected)
    with_aux = segmentation_loss(HalfResolution(aux=True), (images, masks))
    assert set(with_aux) == {"out", "aux"} and with_aux["aux"] > 0
    aux_model = HalfResolution(aux=True)
    with_aux = segmentation_loss(aux_model, (images, masks))
    out_logits = aux_model.conv(images)
    assert torch.allclose(with_aux["out"], _expected_cross_entropy(out_logits, masks))
    assert torch.allclose(with_aux["aux"], 0.5 * _expected_cross_entropy(-out_logits, masks))


def test_total_loss_of_a_tensor_has_no_components():
    loss = torch.tensor(1.5, requires_grad=True)
    total, value, components = total_loss(loss.reshape(1))
    assert total.shape == () and value == 1.5 and components == {}
    total.backward()
    assert loss.grad == 1.0


def test_total_loss_of_a_dict_is_the_sum_and_logs_each_part():
    parts = {"loss_box": torch.tensor(0.25), "loss_cls": torch.tensor([0.5])}
    total, value, components = total_loss(parts)
    assert total.shape == () and value == 0.75
    assert components == {"loss_box": 0.25, "loss_cls": 0.5}


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (torch.ones(3), ValueError, "scalar"),
        ({"a": torch.ones(2), "b": torch.tensor(1.0)}, ValueError, "scalar"),
        ("loss", TypeError, "str"),
        ({}, TypeError, "non-empty dict"),
        ({"a": 1.0}, TypeError, "tensor"),
    ],
)
def test_total_loss_rejects_what_cannot_be_back_propagated(bad, error, words):
    with pytest.raises(error, match=words):
        total_loss(bad)
