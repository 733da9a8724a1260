"""torchvision's pre-trained detectors and FCN as the "On real photos" sections build them.

Everything runs with ``weights=None`` (random weights, nothing downloaded); the weights enums are
only read (their class names and preprocessing ship with torchvision).
"""

import pytest
import torch
from torchvision.models.detection import (
    FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
)
from torchvision.models.segmentation import FCN_ResNet50_Weights

from course_utils.detection import pretrained_detectors
from course_utils.detection.mask_rcnn import MaskHead
from course_utils.segmentation import pretrained_fcn
from course_utils.segmentation.unet_training import WeightedMaps


def _targets(masks: bool = False) -> list[dict]:
    target = {"boxes": torch.tensor([[8.0, 10.0, 40.0, 60.0]]), "labels": torch.tensor([1])}
    if masks:
        target["masks"] = torch.zeros(1, 64, 80, dtype=torch.uint8)
        target["masks"][0, 10:60, 8:40] = 1
    return [target]


def test_the_faster_rcnn_gets_a_new_box_predictor_and_trains():
    torch.manual_seed(0)
    model = pretrained_detectors.finetunable_faster_rcnn(None, 3, min_size=64, max_size=96)
    predictor = model.roi_heads.box_predictor
    assert predictor.cls_score.out_features == 3 and predictor.bbox_pred.out_features == 12
    losses = model([torch.rand(3, 64, 80)], _targets())
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert predictor.cls_score.weight.grad is not None
    model.eval()
    with torch.no_grad():
        (found,) = model([torch.rand(3, 64, 80)])
    assert found["boxes"].shape[1:] == (4,) and set(found["labels"].tolist()) <= {1, 2}


def test_the_faster_rcnn_as_it_comes_predicts_cocos_ids():
    model = pretrained_detectors.pretrained_faster_rcnn(None, min_size=64)
    names = pretrained_detectors.category_names(FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT)
    assert model.roi_heads.box_predictor.cls_score.out_features == len(names)


def test_random_weights_train_every_layer_of_the_backbone():
    model = pretrained_detectors.finetunable_faster_rcnn(None, 2, min_size=64)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_the_mask_rcnn_keeps_torchvisions_mask_head_with_a_new_predictor():
    model = pretrained_detectors.finetunable_mask_rcnn(None, 2, min_size=64, max_size=96)
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    assert len(model.roi_heads.mask_head) == 4  # torchvision's four 3x3 convs
    losses = model([torch.rand(3, 64, 80)], _targets(masks=True))
    assert "loss_mask" in losses and torch.isfinite(losses["loss_mask"])


def test_the_mask_rcnn_takes_the_students_mask_head_with_its_weights():
    torch.manual_seed(0)
    head = MaskHead(256, 2, conv_channels=32, num_convs=2)
    model = pretrained_detectors.finetunable_mask_rcnn(None, 2, mask_head=head, min_size=64)
    assert len(model.roi_heads.mask_head) == 2
    first = model.roi_heads.mask_head[0][0]
    assert torch.equal(first.weight, head.convs[0].weight)
    pooled = torch.rand(3, 256, 14, 14)
    with torch.no_grad():
        ours = head(pooled)
        theirs = model.roi_heads.mask_predictor(model.roi_heads.mask_head(pooled))
    torch.testing.assert_close(theirs, ours)


def test_a_mask_head_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="256 channels and predict num_classes = 2"):
        pretrained_detectors.finetunable_mask_rcnn(None, 2, mask_head=MaskHead(64, 2))
    with pytest.raises(ValueError, match="num_classes = 3"):
        pretrained_detectors.finetunable_mask_rcnn(None, 3, mask_head=MaskHead(256, 2))


def test_weights_of_another_model_are_refused():
    with pytest.raises(TypeError, match="FasterRCNN_MobileNet_V3_Large_FPN_Weights member"):
        pretrained_detectors.finetunable_faster_rcnn(MaskRCNN_ResNet50_FPN_Weights.DEFAULT)
    with pytest.raises(TypeError, match="MaskRCNN_ResNet50_FPN_Weights member"):
        pretrained_detectors.finetunable_mask_rcnn("DEFAULT")
    with pytest.raises(TypeError, match="FCN_ResNet50_Weights member"):
        pretrained_fcn.pretrained_fcn(FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT)


def test_settings_cannot_override_the_functions_own_arguments():
    with pytest.raises(ValueError, match="weights_backbone"):
        pretrained_detectors.finetunable_faster_rcnn(None, weights_backbone=None)
    with pytest.raises(ValueError, match="weights_backbone"):
        pretrained_detectors.finetunable_mask_rcnn(None, 2, weights_backbone=None)


def test_replace_box_predictor_checks_its_arguments():
    with pytest.raises(TypeError, match="FasterRCNN or MaskRCNN"):
        pretrained_detectors.replace_box_predictor(torch.nn.Linear(2, 2), 2)
    model = pretrained_detectors.finetunable_faster_rcnn(None, 2, min_size=64)
    with pytest.raises(ValueError, match="num_classes"):
        pretrained_detectors.replace_box_predictor(model, 1)


def test_category_names_come_from_the_weights_enum():
    names = pretrained_detectors.category_names(FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT)
    assert names[0] == "__background__" and names[1] == "person" and len(names) == 91
    with pytest.raises(TypeError, match="weights enum member"):
        pretrained_detectors.category_names("COCO_V1")


@pytest.fixture(scope="module")
def random_fcn():
    torch.manual_seed(0)
    return pretrained_fcn.pretrained_fcn(None)


def test_the_fcn_scores_one_vector_per_8_pixels_of_the_resized_photo(random_fcn):
    assert not random_fcn.training
    preprocess = FCN_ResNet50_Weights.DEFAULT.transforms(resize_size=48)
    photo = torch.rand(3, 60, 90)
    scores = pretrained_fcn.class_score_map(random_fcn, photo, preprocess)
    assert scores.shape == (pretrained_fcn.VOC_CLASS_COUNT, 6, 9)  # 48 x 72 resized, / 8
    labels, coarse = pretrained_fcn.segment_photo(random_fcn, photo, preprocess)
    assert labels.shape == (60, 90) and labels.dtype == torch.int64
    torch.testing.assert_close(coarse, scores)
    assert int(labels.max()) < pretrained_fcn.VOC_CLASS_COUNT


def test_segment_photo_checks_its_inputs(random_fcn):
    preprocess = FCN_ResNet50_Weights.DEFAULT.transforms(resize_size=32)
    with pytest.raises(TypeError, match="torchvision FCN"):
        pretrained_fcn.segment_photo(torch.nn.Conv2d(3, 3, 1), torch.rand(3, 32, 32), preprocess)
    with pytest.raises(TypeError, match="preprocess must be callable"):
        pretrained_fcn.segment_photo(random_fcn, torch.rand(3, 32, 32), "resize")
    with pytest.raises((TypeError, ValueError), match="photo"):
        pretrained_fcn.segment_photo(random_fcn, torch.rand(32, 32), preprocess)


class _Maps(torch.utils.data.Dataset):
    def __init__(self, maps):
        self.maps = maps

    def __len__(self):
        return len(self.maps)

    def __getitem__(self, index):
        return torch.zeros(3, *self.maps[index].shape), self.maps[index]


def test_weighted_maps_weigh_each_pixel_by_its_class():
    semantic = torch.tensor([[0, 1], [2, 255]])
    item = WeightedMaps(_Maps([semantic]), torch.tensor([0.5, 1.5, 3.0]))[0]
    image, maps, weights = item
    assert image.shape == (3, 2, 2) and torch.equal(maps, semantic)
    assert weights.tolist() == [[0.5, 1.5], [3.0, 0.0]] and weights.dtype == torch.float32


def test_weighted_maps_check_the_class_ids_and_the_weights():
    with pytest.raises(ValueError, match=r"ids in \[0, 2\) or 255"):
        WeightedMaps(_Maps([torch.tensor([[0, 2]])]), torch.tensor([1.0, 1.0]))[0]
    with pytest.raises(ValueError, match="float"):
        WeightedMaps(_Maps([]), torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="map-style dataset"):
        WeightedMaps(42, torch.tensor([1.0]))
