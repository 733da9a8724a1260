"""course_utils.detection.torchvision_mask_rcnn: torchvision's MaskRCNN on the course's parts."""

import pytest
import torch
from test_torchvision_baseline import SETTINGS, tiny_classifier

from course_utils.data.datasets import SceneDataset, detection_collate
from course_utils.detection.detector_training import train_detector
from course_utils.detection.faster_rcnn_training import MirroredScenes
from course_utils.detection.mask_rcnn import MaskHead
from course_utils.detection.torchvision_baseline import (
    detect_with_torchvision,
    torchvision_faster_rcnn,
)
from course_utils.detection.torchvision_mask_rcnn import (
    torchvision_mask_head,
    torchvision_mask_rcnn,
)
from course_utils.engine.losses import detection_loss


def head(num_convs: int = 2, seed: int = 0) -> MaskHead:
    torch.manual_seed(seed)
    mask_head = MaskHead(16, 4, conv_channels=8, num_convs=num_convs)
    with torch.no_grad():
        for parameter in mask_head.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))  # non-zero biases too
    return mask_head


def reference(**kwargs):
    kwargs = {"image_size": 64, "anchor_sizes": (8, 16), "aspect_ratios": (0.5, 1.0), **kwargs}
    return torchvision_mask_rcnn(
        tiny_classifier(0), mask_head=head(), rpn=SETTINGS, rois_per_image=16, **kwargs
    )


@pytest.mark.parametrize("num_convs", [1, 2, 3])
def test_torchvision_mask_head_computes_the_same_logits(num_convs):
    mask_head = head(num_convs)
    heads, predictor = torchvision_mask_head(mask_head)
    pooled = torch.randn(5, 16, 6, 6)
    expected = mask_head(pooled)
    assert expected.shape == (5, 4, 12, 12)
    torch.testing.assert_close(predictor(heads(pooled)), expected)


def test_torchvision_mask_head_copies_the_weights():
    mask_head = head()
    heads, predictor = torchvision_mask_head(mask_head)
    with torch.no_grad():
        predictor.mask_fcn_logits.weight.zero_()
        heads[0][0].bias.fill_(3.0)
    assert mask_head.predictor.weight.abs().sum() > 0
    assert not torch.all(mask_head.convs[0].bias == 3.0)


def test_torchvision_mask_head_rejects_what_it_cannot_copy():
    with pytest.raises(TypeError, match="laid out as MaskHead"):
        torchvision_mask_head(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="num_convs >= 1"):
        torchvision_mask_head(MaskHead(16, 4, num_convs=0))


def test_everything_but_the_mask_branch_is_the_faster_rcnn_baseline():
    masked = reference(score_threshold=0.05, nms_threshold=0.4, max_detections=7)
    plain = torchvision_faster_rcnn(
        tiny_classifier(0),
        rpn=SETTINGS,
        rois_per_image=16,
        image_size=64,
        anchor_sizes=(8, 16),
        aspect_ratios=(0.5, 1.0),
        score_threshold=0.05,
        nms_threshold=0.4,
        max_detections=7,
    )
    masked_state, plain_state = masked.state_dict(), plain.state_dict()
    shared = [key for key in masked_state if not key.startswith("roi_heads.mask_")]
    assert sorted(shared) == sorted(plain_state)
    for key in shared:
        if "bbox_pred" not in key and "rpn.head" not in key:  # randomly initialised in both
            torch.testing.assert_close(masked_state[key], plain_state[key], msg=key)
    heads = masked.roi_heads
    assert heads.mask_roi_pool.output_size == (8, 8)
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == (0.05, 0.4, 7)


def test_mask_pooled_size_sets_the_mask_grid():
    model = reference(mask_pooled_size=5)
    assert model.roi_heads.mask_roi_pool.output_size == (5, 5)
    with pytest.raises(ValueError, match="mask_pooled_size"):
        reference(mask_pooled_size=0)


def test_trains_with_the_shared_loop_and_returns_masks():
    model = reference(image_size=128)
    scenes = SceneDataset("train", num_images=2, progress=False)
    data = MirroredScenes(scenes, keep_masks=True)
    history = train_detector(
        model, data, detection_loss, steps=3, images_per_batch=2, collate_fn=detection_collate
    )
    components = history.records[-1]["components"]
    assert set(components) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    assert all(torch.isfinite(torch.tensor(v)) for v in components.values())
    images = [scenes[0][0]]
    detections = detect_with_torchvision(model, images)[0]
    assert detections["masks"].shape[1:] == (1, *images[0].shape[-2:])
    assert len(detections["masks"]) == len(detections["boxes"])


def test_a_head_laid_out_like_mask_head_is_copied_too():
    class StudentHead(torch.nn.Module):  # the notebook's class: same attributes, no in_channels
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.Sequential(torch.nn.Conv2d(16, 8, 3, padding=1), torch.nn.ReLU())
            self.upsample = torch.nn.ConvTranspose2d(8, 8, 2, stride=2)
            self.predictor = torch.nn.Conv2d(8, 4, 1)

        def forward(self, x):
            upsampled = torch.nn.functional.relu(self.upsample(self.convs(x)))
            return self.predictor(upsampled)

    student = StudentHead()
    heads, predictor = torchvision_mask_head(student)
    pooled = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(predictor(heads(pooled)), student(pooled))
