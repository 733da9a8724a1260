"""Proposal quality measures, naive baselines and the proposal cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from course_utils.data.scenes import SceneConfig, generate_scene, scene_seed
from course_utils.detection import proposals as P
from course_utils.detection.selective_search import selective_search

# --------------------------------------------------------------------------- quality


def test_best_overlaps_known_values():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    proposals = torch.tensor(
        [[0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 5.0, 10.0]]
    )
    np.testing.assert_allclose(P.best_overlaps(proposals, gt).numpy(), [0.5, 1.0])
    wrapped = tv_tensors.BoundingBoxes(gt, format="XYXY", canvas_size=(40, 40))
    overlaps = P.best_overlaps(proposals.numpy(), wrapped)
    assert type(overlaps) is torch.Tensor and overlaps.tolist() == [0.5, 1.0]
    np.testing.assert_array_equal(P.best_overlaps(torch.zeros(0, 4), gt).numpy(), [0.0, 0.0])
    assert P.best_overlaps(proposals, torch.zeros(0, 4)).shape == (0,)
    with pytest.raises(ValueError, match="x2 < x1"):
        P.best_overlaps(torch.tensor([[5.0, 0.0, 1.0, 1.0]]), gt)


def test_proposal_quality_counts_only_the_first_proposals():
    gt = [
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
    ]
    labels = [torch.tensor([1, 2]), torch.tensor([1])]
    proposals = [
        torch.tensor([[50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]]),
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
    ]
    q = P.proposal_quality(proposals, gt, labels, counts=[0, 1, 2, 3, 10])
    np.testing.assert_array_equal(q["counts"], [0, 1, 2, 3, 10])
    # best overlaps per count of gt boxes (a, b, c):
    # (0, 0, 0), (0, 0, 1), (.5, 0, 1), (.5, 1, 1), (.5, 1, 1)
    np.testing.assert_allclose(
        q["best_overlaps"], [[0, 0, 0], [0, 0, 1], [0.5, 0, 1], [0.5, 1, 1], [0.5, 1, 1]]
    )
    np.testing.assert_allclose(q["recall"], [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(q["abo"], [0, 1 / 3, 0.5, 2.5 / 3, 2.5 / 3])
    # MABO: class 1 = boxes a and c, class 2 = box b
    np.testing.assert_allclose(q["mabo"], [0, 0.25, 0.375, (0.75 + 1) / 2, (0.75 + 1) / 2])
    np.testing.assert_allclose(q["mean_proposals"], [0, 1, 1.5, 2, 2])
    without_labels = P.proposal_quality(proposals, gt, None, counts=[3])
    np.testing.assert_allclose(without_labels["mabo"], without_labels["abo"])


def test_proposal_quality_uses_the_iou_threshold():
    gt = [torch.tensor([[0.0, 0.0, 10.0, 10.0]])]
    proposals = [torch.tensor([[0.0, 0.0, 10.0, 6.0]])]  # IoU 0.6
    assert P.proposal_quality(proposals, gt, counts=[1], iou_threshold=0.5)["recall"][0] == 1.0
    assert P.proposal_quality(proposals, gt, counts=[1], iou_threshold=0.7)["recall"][0] == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(proposals=[torch.zeros(0, 4)], gt_boxes=[]), "one entry per image"),
        (dict(proposals=[torch.zeros(0, 4)], gt_boxes=[torch.zeros(0, 4)]), "no ground-truth"),
        (dict(proposals=[torch.zeros(0, 4)], gt_boxes=[torch.ones(1, 4)], counts=[]), "counts"),
        (
            dict(proposals=[torch.zeros(0, 4)], gt_boxes=[torch.ones(1, 4)], iou_threshold=0),
            "iou_threshold",
        ),
        (
            dict(
                proposals=[torch.zeros(0, 4)],
                gt_boxes=[torch.ones(1, 4)],
                gt_labels=[torch.tensor([1, 2])],
            ),
            "one entry per box",
        ),
    ],
)
def test_proposal_quality_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        P.proposal_quality(**kwargs)


# --------------------------------------------------------------------------- baselines


def test_random_proposals_stay_inside_and_are_seeded():
    boxes = P.random_proposals(500, (64, 96), seed=3)
    assert boxes.shape == (500, 4) and boxes.dtype == torch.float32
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    widths = boxes[:, 2] - boxes[:, 0]
    assert widths.min() < 12 and widths.max() > 60  # log-uniform sizes cover small and large
    assert torch.equal(boxes, P.random_proposals(500, (64, 96), seed=3))
    assert not torch.equal(boxes, P.random_proposals(500, (64, 96), seed=4))
    assert P.random_proposals(0, (64, 96)).shape == (0, 4)
    with pytest.raises(ValueError, match="num"):
        P.random_proposals(-1, (64, 96))
    with pytest.raises(TypeError, match="num"):
        P.random_proposals(2.5, (64, 96))
    with pytest.raises(ValueError, match="min_side"):
        P.random_proposals(3, (64, 96), min_side=65)


def test_sliding_windows_tile_the_image():
    boxes = P.sliding_window_proposals((128, 128), sizes=(64, 32), stride_fraction=0.5)
    assert len(boxes) == 3 * 3 + 7 * 7
    assert boxes[0].tolist() == [0, 0, 64, 64] and boxes[-1].tolist() == [96, 96, 128, 128]
    with pytest.raises(ValueError, match="stride_fraction"):
        P.sliding_window_proposals((8, 8), stride_fraction=0)
    with pytest.raises(ValueError, match="stride_fraction"):
        P.sliding_window_proposals((8, 8), stride_fraction=1.5)


# --------------------------------------------------------------------------- the cache


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def counting(monkeypatch):
    """Replace the Selective Search call by a cheap fake that counts its calls.

    The fake's boxes depend on the image, not on its index.
    """
    calls = []

    def fake(image, params):
        calls.append(params["mode"])
        value = int(image[0, 0, 0]) % 50
        return torch.tensor(
            [[value, 0, value + 10, 10], [0, 0, 5, 5], [1, 1, 3, 3]], dtype=torch.int16
        )

    monkeypatch.setattr(P, "_compute", fake)
    return calls


def test_params_key_and_path_depend_on_every_parameter(data_folder):
    assert P.params_key() == P.params_key({"mode": "fast"})  # defaults fill in
    assert P.params_key({"mode": "single"}) != P.params_key()
    assert P.params_key({"seed": 1}) != P.params_key()
    path = P.cache_path("val", {"mode": "single"})
    assert path.parent == data_folder / "proposals" and path.name.startswith("val-")
    assert P.cache_path("val", config=SceneConfig(size=64)) != P.cache_path("val")
    with pytest.raises(ValueError, match="unknown proposal parameters"):
        P.normalize_params({"k": 3})
    with pytest.raises(ValueError, match="mode"):
        P.normalize_params({"mode": "best"})
    with pytest.raises(ValueError, match="split"):
        P.cache_path("dev")


def test_cache_miss_then_hit_then_partial_miss(data_folder, counting):
    first = P.load_proposals("val", 3, progress=False)
    assert len(counting) == 3 and len(first) == 3
    assert all(b.dtype == torch.float32 and b.shape == (3, 4) for b in first)
    again = P.load_proposals("val", 3, progress=False)
    assert len(counting) == 3  # a hit computes nothing
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    more = P.load_proposals("val", 5, progress=False)
    assert len(counting) == 5  # only the 2 missing images
    assert all(torch.equal(a, b) for a, b in zip(first, more[:3]))
    assert len(P.load_proposals("val", 2, progress=False)) == 2 and len(counting) == 5


def test_a_parameter_change_is_another_cache(data_folder, counting):
    P.load_proposals("val", 2, progress=False)
    P.load_proposals("val", 2, params={"mode": "single"}, progress=False)
    assert counting == ["fast", "fast", "single", "single"]
    assert len(list((data_folder / "proposals").glob("*.pt"))) == 2
    P.load_proposals("train", 1, progress=False)
    assert len(counting) == 5


def test_max_proposals_is_applied_on_loading(data_folder, counting):
    full = P.load_proposals("val", 2, progress=False)
    capped = P.load_proposals("val", 2, max_proposals=2, progress=False)
    assert len(counting) == 2
    assert all(torch.equal(c, f[:2]) for c, f in zip(capped, full))
    with pytest.raises(ValueError, match="max_proposals"):
        P.load_proposals("val", 2, max_proposals=0)
    with pytest.raises(ValueError, match="num_images"):
        P.load_proposals("val", -1)
    with pytest.raises(TypeError, match="max_proposals"):
        P.load_proposals("val", 2, max_proposals=2.0)


def test_a_corrupt_cache_file_is_recomputed_with_a_warning(data_folder, counting):
    P.load_proposals("val", 2, progress=False)
    path = P.cache_path("val")
    path.write_bytes(b"this is not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        boxes = P.load_proposals("val", 2, progress=False)
    assert len(counting) == 4 and len(boxes) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.load_proposals("val", 2, progress=False)  # rewritten: a clean hit
    assert len(counting) == 4


def test_a_truncated_cache_file_is_recomputed(data_folder, counting):
    P.load_proposals("val", 2, progress=False)
    path = P.cache_path("val")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(UserWarning, match="unreadable"):
        P.load_proposals("val", 2, progress=False)
    assert len(counting) == 4


def test_writes_are_atomic_and_clear_removes_files(data_folder, counting):
    P.load_proposals("val", 2, progress=False)
    P.load_proposals("test", 1, progress=False)
    folder = data_folder / "proposals"
    assert not list(folder.glob("*.tmp"))
    assert P.clear_proposal_cache("val") == 1
    assert P.clear_proposal_cache() == 1
    assert P.clear_proposal_cache() == 0


def test_real_proposals_match_selective_search_on_the_scene(data_folder):
    boxes = P.load_proposals("val", 1, params={"mode": "single"}, progress=False)[0]
    image = generate_scene(scene_seed("val", 0)).image
    assert torch.equal(boxes, selective_search(image, mode="single"))
    assert torch.equal(
        P.load_proposals("val", 1, params={"mode": "single"}, max_proposals=5)[0], boxes[:5]
    )


def test_saved_proposals_are_served_by_load(data_folder, counting):
    boxes = [
        torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 3.0, 5.0]]),
        torch.tensor([[2.0, 2.0, 9.0, 9.0]]),
    ]
    path = P.save_proposals("val", boxes)
    assert path == P.cache_path("val") and path.exists()
    loaded = P.load_proposals("val", 3, progress=False)
    assert counting == ["fast"]  # only image 2 was missing
    assert torch.equal(loaded[0], boxes[0]) and torch.equal(loaded[1], boxes[1])
    with pytest.raises(ValueError, match="integer pixel"):
        P.save_proposals("val", [torch.tensor([[0.5, 0.0, 4.0, 4.0]])])
