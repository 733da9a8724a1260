"""course_utils.detection.yolo_network: the frozen trunk, YOLO's added layers, the shared head."""

import pytest
import torch
from fast_rcnn_helpers import trained_like_classifier
from torch import nn

from course_utils.detection.yolo import YOLOHead, YOLOv1, decode_predictions
from course_utils.detection.yolo_network import YOLOConvHead, grid_features, pretrained_trunk


def test_pretrained_trunk_is_a_frozen_eval_copy_of_the_conv_blocks():
    classifier = trained_like_classifier()
    trunk = pretrained_trunk(classifier)
    images = torch.rand(2, 3, 64, 48)
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())
    with torch.no_grad():
        expected = classifier.features[:-1](images)
        torch.testing.assert_close(trunk(images), expected)
    assert trunk(images).shape == (2, 16, 8, 6)  # width 4 -> 4 * 4 channels, stride 8
    with torch.no_grad():
        next(trunk.parameters()).add_(1.0)  # a copy: the classifier is untouched
    assert not torch.equal(next(trunk.parameters()), next(classifier.parameters()))


def test_pretrained_trunk_rejects_a_module_without_crop_classifier_features():
    with pytest.raises(TypeError, match="CropClassifier"):
        pretrained_trunk(nn.Linear(3, 3))
    with pytest.raises(TypeError, match="nn.Flatten"):
        pretrained_trunk(nn.Module())


@pytest.mark.parametrize("size", [(16, 16), (13, 20), (7, 7)])
def test_grid_features_pools_any_map_to_the_grid(size):
    neck = grid_features(8, 12, grid_size=7).eval()
    assert neck(torch.rand(3, 8, *size)).shape == (3, 12, 7, 7)
    with pytest.raises(ValueError, match="grid_size"):
        grid_features(8, 12, grid_size=0)


def test_conv_head_is_the_same_1x1_layers_at_every_cell():
    torch.manual_seed(0)
    head = YOLOConvHead(6, boxes_per_cell=2, num_classes=3, hidden=5)
    features = torch.rand(2, 6, 4, 4)
    output = head(features)
    assert output.shape == (2, 4, 4, 13) and head.boxes_per_cell == 2
    # cell (1, 2) of image 1 depends only on its own feature vector
    vector = features[1, :, 1, 2]
    hidden = nn.functional.leaky_relu(head.conv1.weight[:, :, 0, 0] @ vector + head.conv1.bias, 0.1)
    expected = head.conv2.weight[:, :, 0, 0] @ hidden + head.conv2.bias
    torch.testing.assert_close(output[1, 1, 2], expected)
    with pytest.raises(ValueError, match=r"\(N, D, S, S\)"):
        head(torch.rand(6, 4, 4))


def test_both_heads_make_a_detector_that_decodes():
    torch.manual_seed(0)
    trunk = pretrained_trunk(trained_like_classifier())  # 64x64 -> (16, 8, 8)
    for head in (YOLOConvHead(16, 2, 3), YOLOHead(16 * 7 * 7, 7, 2, 3, hidden=8, dropout=0.0)):
        model = YOLOv1(nn.Sequential(trunk, grid_features(16, 16, 7)), head).eval()
        images = torch.rand(2, 3, 64, 64)
        output = model(images)
        assert output.shape == (2, 7, 7, 13) and model.boxes_per_cell == 2
        found = model.detect(images, score_threshold=0.0)
        expected = decode_predictions(output[1].detach(), (64, 64), 2, 0.0)
        torch.testing.assert_close(found[1]["boxes"], expected["boxes"])
