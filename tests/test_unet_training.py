"""course_utils.segmentation.unet_training: the scenes as arrays, the per-pixel weights, the seeded
random crops, the U-Net loss and the shared training loop (with skips switched off)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_utils.core.tensors import plain
from course_utils.data.datasets import SceneDataset
from course_utils.segmentation import unet, unet_training
from course_utils.segmentation.unet_losses import (
    border_weight_map,
    class_balance_weights,
    dice_loss,
    weighted_cross_entropy,
)
from course_utils.segmentation.unet_training import (
    pixel_weights,
    random_crops,
    scene_arrays,
    train_unet,
    unet_loss,
)

NUM_CLASSES = 7  # the scenes' SEMANTIC_CLASSES


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The scenes' cache in a temporary folder, for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("data")
        patch.setenv("COURSE_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def scenes(data_dir):
    return SceneDataset("train", num_images=4, progress=False)


@pytest.fixture(scope="module")
def arrays(scenes):
    return scene_arrays(scenes)


@pytest.fixture(scope="module")
def crops(arrays):
    """Four 16x16 crops (images, maps, class-balanced weights) of the scenes."""
    images, maps, _ = arrays
    weights = pixel_weights(maps, class_balance_weights(maps, NUM_CLASSES))
    return random_crops([images, maps, weights], crop=16, count=4, seed=0)


# ----------------------------------------------------------------------------------------------
# scene_arrays
# ----------------------------------------------------------------------------------------------


def test_scene_arrays_stacks_the_items(scenes, arrays):
    images, maps, instances = arrays
    size = scenes.config.size
    assert images.shape == (4, 3, size, size) and images.dtype == torch.float32
    assert maps.shape == (4, size, size) and maps.dtype == torch.int64
    assert type(images) is torch.Tensor and type(maps) is torch.Tensor  # no tv_tensor wrapper
    assert isinstance(instances, list) and len(instances) == 4
    for index in range(4):
        image, target = scenes[index]
        assert torch.equal(images[index], plain(image))
        assert torch.equal(maps[index], plain(target["semantic"]))
        masks, labels = instances[index]
        assert type(masks) is torch.Tensor and masks.dtype == torch.bool
        assert torch.equal(masks, plain(target["masks"]).bool())
        assert labels.dtype == torch.int64 and torch.equal(labels, target["labels"])
        assert masks.shape == (len(labels), size, size)


def test_scene_arrays_rejects_a_segmentation_dataset(data_dir):
    segmentation = SceneDataset("train", num_images=4, task="segmentation", progress=False)
    with pytest.raises(TypeError, match="detection SceneDataset.*'semantic' and 'masks'"):
        scene_arrays(segmentation)


def test_scene_arrays_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        scene_arrays([])


# ----------------------------------------------------------------------------------------------
# pixel_weights
# ----------------------------------------------------------------------------------------------

CLASS_WEIGHTS = torch.tensor([0.5, 2.0, 3.0, 1.25, 0.75, 4.0, 1.5, 9.0])


def test_pixel_weights_without_instances_are_the_class_weights(arrays):
    _, maps, _ = arrays
    weights = pixel_weights(maps, CLASS_WEIGHTS)
    assert weights.shape == maps.shape and weights.dtype == torch.float32
    assert torch.equal(weights, CLASS_WEIGHTS[maps])
    as_int = pixel_weights(maps, torch.tensor([1, 2, 3, 4, 5, 6, 7]))  # int weights: float32 out
    assert as_int.dtype == torch.float32 and torch.equal(as_int, (maps + 1).float())


def test_pixel_weights_add_the_reference_border_term(arrays):
    _, maps, instances = arrays
    weights = pixel_weights(maps, CLASS_WEIGHTS, instances, border_weight_map, w0=7.0, sigma=3.0)
    borders = torch.stack([border_weight_map(masks, 7.0, 3.0) - 1 for masks, _ in instances])
    torch.testing.assert_close(weights, CLASS_WEIGHTS[maps] + borders, rtol=0, atol=1e-6)
    assert weights.dtype == torch.float32
    assert float((weights - CLASS_WEIGHTS[maps]).max()) > 1.0  # the term is there
    defaults = pixel_weights(maps, CLASS_WEIGHTS, instances, border_weight_map)
    borders = torch.stack([border_weight_map(masks, 10.0, 5.0) - 1 for masks, _ in instances])
    torch.testing.assert_close(defaults, CLASS_WEIGHTS[maps] + borders, rtol=0, atol=1e-6)


def _positional_border(instance_masks, w0, sigma):
    """A student's signature; float64 (H, W): 1 + w0 * (objects covering x) + sigma."""
    _positional_border.calls.append((instance_masks, w0, sigma))
    return 1.0 + w0 * instance_masks.double().sum(0) + sigma


def _keyword_border(instance_masks, *, w0, sigma):
    """Only callable with w0= and sigma= keywords."""
    _keyword_border.calls.append((instance_masks, w0, sigma))
    return 1.0 + w0 * instance_masks.double().sum(0) + sigma


@pytest.mark.parametrize("border_fn", [_positional_border, _keyword_border])
def test_pixel_weights_add_any_border_fn_minus_one(arrays, border_fn):
    _, maps, instances = arrays
    border_fn.calls = []
    weights = pixel_weights(maps, CLASS_WEIGHTS, instances, border_fn, w0=2.0, sigma=0.25)
    counts = torch.stack([masks.float().sum(0) for masks, _ in instances])
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, CLASS_WEIGHTS[maps] + 2.0 * counts + 0.25)
    assert len(border_fn.calls) == len(instances)
    for (masks, w0, sigma), (expected, _) in zip(border_fn.calls, instances):
        assert torch.equal(masks, expected) and (w0, sigma) == (2.0, 0.25)


def test_pixel_weights_validate_their_inputs(arrays):
    _, maps, instances = arrays
    with pytest.raises((TypeError, ValueError), match="maps must be int64"):
        pixel_weights(maps.float(), CLASS_WEIGHTS)
    with pytest.raises(ValueError, match=r"maps must be int64 \(N, H, W\)"):
        pixel_weights(maps[0], CLASS_WEIGHTS)
    with pytest.raises(ValueError, match=r"class_weights must be \(K,\).*max 6"):
        pixel_weights(maps, CLASS_WEIGHTS[:6])  # one short: class 6 has no weight
    with pytest.raises(ValueError, match="class_weights"):
        pixel_weights(maps, CLASS_WEIGHTS.view(2, 4))
    with pytest.raises(ValueError, match="border_fn"):
        pixel_weights(maps, CLASS_WEIGHTS, instances)
    with pytest.raises(ValueError, match="instances"):
        pixel_weights(maps, CLASS_WEIGHTS, border_fn=border_weight_map)
    with pytest.raises(ValueError, match="one per map"):
        pixel_weights(maps, CLASS_WEIGHTS, instances[:3], border_weight_map)
    with pytest.raises(ValueError, match="w0"):
        pixel_weights(maps, CLASS_WEIGHTS, instances, border_weight_map, w0=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        pixel_weights(maps, CLASS_WEIGHTS, instances, border_weight_map, sigma=0.0)


# ----------------------------------------------------------------------------------------------
# random_crops
# ----------------------------------------------------------------------------------------------

N, H, W = 3, 10, 12


def _position_tensors() -> list[torch.Tensor]:
    """Tensors whose values say where they are: ``code = n * 10000 + y * 100 + x``.

    images float (N, 2, H, W) (channel c adds c * 5000), maps int64 (N, H, W) the code, weights
    float (N, H, W) minus the code."""
    code = (
        torch.arange(N).view(N, 1, 1) * 10000
        + torch.arange(H).view(1, H, 1) * 100
        + torch.arange(W).view(1, 1, W)
    )
    return [torch.stack([code, code + 5000], 1).float(), code, -code.float()]


def _windows(data: TensorDataset, tensors: list[torch.Tensor], crop: int) -> list[tuple]:
    """``(scene, top, left, flipped)`` of every crop, checking that all tensors agree."""
    images, code, weights = tensors
    found = []
    for image, window, weight in data:
        corner = int(window[0, 0])
        scene, top, xs = corner // 10000, corner % 10000 // 100, window[0] % 100
        flipped = bool(xs[0] > xs[-1])
        left = int(xs.min())
        for got, tensor in ((window, code), (image, images), (weight, weights)):
            cut = tensor[scene, ..., top : top + crop, left : left + crop]
            assert torch.equal(got, cut.flip(-1) if flipped else cut)
        found.append((scene, top, left, flipped))
    return found


def test_random_crops_cut_the_same_window_of_every_tensor():
    tensors = _position_tensors()
    before = [t.clone() for t in tensors]
    data = random_crops(tensors, crop=8, count=300, seed=3)
    assert isinstance(data, TensorDataset) and len(data) == 300
    image, window, weight = data[0]
    assert image.shape == (2, 8, 8) and window.shape == weight.shape == (8, 8)
    assert (image.dtype, window.dtype, weight.dtype) == (torch.float32, torch.int64, torch.float32)
    found = _windows(data, tensors, 8)
    scenes, tops, lefts, flips = zip(*found)
    assert set(scenes) == set(range(N))  # every scene and position can be drawn
    assert set(tops) == set(range(H - 8 + 1)) and set(lefts) == set(range(W - 8 + 1))
    assert 0.35 < sum(flips) / len(flips) < 0.65  # mirrored half of the time, all tensors alike
    assert all(torch.equal(a, b) for a, b in zip(tensors, before))  # the inputs are untouched


def test_random_crops_do_not_flip_without_flip():
    tensors = _position_tensors()
    found = _windows(random_crops(tensors, crop=5, count=60, seed=1, flip=False), tensors, 5)
    assert not any(flipped for *_, flipped in found)


def test_random_crops_may_be_as_large_as_the_scenes():
    tensors = _position_tensors()
    found = _windows(random_crops(tensors, crop=H, count=40, seed=0), tensors, H)
    assert {top for _, top, _, _ in found} == {0}
    assert {left for _, _, left, _ in found} == set(range(W - H + 1))


def test_random_crops_depend_on_the_seed_only():
    tensors = _position_tensors()
    state = torch.get_rng_state()
    first = random_crops(tensors, crop=4, count=20, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is not touched
    torch.manual_seed(123)  # another global state: same crops
    again = random_crops(tensors, crop=4, count=20, seed=5)
    other = random_crops(tensors, crop=4, count=20, seed=6)
    for k in range(3):
        assert torch.equal(first.tensors[k], again.tensors[k])
    assert not torch.equal(first.tensors[1], other.tensors[1])


def test_random_crops_validate_their_inputs():
    images, code, weights = _position_tensors()
    with pytest.raises(ValueError, match="at least one"):
        random_crops([], crop=4, count=2)
    with pytest.raises(ValueError, match=r"tensors\[1\] must be \(N, \.\.\., H, W\)"):
        random_crops([images, code[:2]], crop=4, count=2)  # another N
    with pytest.raises(ValueError, match=r"tensors\[2\]"):
        random_crops([images, code, weights[..., :-1]], crop=4, count=2)  # another W
    with pytest.raises(ValueError, match=r"crop 11 is larger than the scenes \(10x12\)"):
        random_crops([images, code], crop=H + 1, count=2)
    with pytest.raises(ValueError, match="crop"):
        random_crops([images], crop=0, count=2)
    with pytest.raises(ValueError, match="count"):
        random_crops([images], crop=4, count=0)
    with pytest.raises(TypeError, match="count"):
        random_crops([images], crop=4, count=2.5)


# ----------------------------------------------------------------------------------------------
# unet_loss
# ----------------------------------------------------------------------------------------------


def _loss_problem(ignore: bool = False):
    generator = torch.Generator().manual_seed(0)
    model = nn.Conv2d(3, 4, 3, padding=1)
    images = torch.rand(2, 3, 8, 8, generator=generator)
    maps = torch.randint(0, 4, (2, 8, 8), generator=generator)
    weights = torch.rand(2, 8, 8, generator=generator) * 3 + 0.1
    if ignore:
        maps[0, :3] = 255
        maps[1, :, 5:] = 255
    return model, (images, maps, weights)


@pytest.mark.parametrize("ignore", [False, True])
def test_unet_loss_is_the_weighted_cross_entropy(ignore):
    model, (images, maps, weights) = _loss_problem(ignore)
    terms = unet_loss(model, (images, maps, weights))
    assert set(terms) == {"cross_entropy"}
    loss = terms["cross_entropy"]
    assert loss.ndim == 0 and loss.dtype == torch.float32 and loss.requires_grad
    expected = weighted_cross_entropy(model(images), maps, weights)
    torch.testing.assert_close(loss, expected)
    unweighted = weighted_cross_entropy(model(images), maps, torch.ones_like(weights))
    assert not torch.allclose(loss, unweighted)  # the weights count
    if ignore:  # the weights of ignored pixels count for nothing
        heavy = weights.masked_fill(maps == 255, 1e6)
        torch.testing.assert_close(unet_loss(model, (images, maps, heavy))["cross_entropy"], loss)


def test_unet_loss_excludes_a_chosen_ignore_index():
    model, (images, maps, weights) = _loss_problem()
    maps[:, 0] = 9
    loss = unet_loss(model, (images, maps, weights), ignore_index=9)["cross_entropy"]
    expected = weighted_cross_entropy(model(images), maps, weights, ignore_index=9)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("ignore", [False, True])
def test_unet_loss_adds_a_dice_term(ignore):
    model, batch = _loss_problem(ignore)
    calls = []

    def spy(logits, maps, ignore_index):
        calls.append(ignore_index)
        return dice_loss(logits, maps, ignore_index)

    terms = unet_loss(model, batch, dice_fn=spy)
    assert set(terms) == {"cross_entropy", "dice"} and calls == [255]
    images, maps, weights = batch
    torch.testing.assert_close(terms["dice"], dice_loss(model(images), maps))
    torch.testing.assert_close(
        terms["cross_entropy"], weighted_cross_entropy(model(images), maps, weights)
    )
    sum(terms.values()).backward()
    assert model.weight.grad is not None and float(model.weight.grad.abs().sum()) > 0


# ----------------------------------------------------------------------------------------------
# train_unet
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(folder))
    return folder


def _tiny_unet(seed: int = 0) -> unet.UNet:
    torch.manual_seed(seed)
    return unet.UNet(3, NUM_CLASSES, width=2)


def _train(model, crops, steps, **options):
    return train_unet(
        model, crops, steps=steps, batch_size=4, progress=False, checkpoint=None, device="cpu",
        **options,
    )  # fmt: skip


def test_train_unet_lowers_the_loss(crops, checkpoints):
    model = _tiny_unet()
    history = _train(model, crops, 20, lr=0.02)
    assert history.finished and len(history.records) == 20
    assert set(history.records[0]["components"]) == {"cross_entropy"}
    losses = history.losses
    assert max(losses[-3:]) < 0.9 * losses[0], losses
    lrs = [record["lr"] for record in history.records]
    assert lrs.index(max(lrs)) == 2  # one-cycle, 15 % warm-up: peaks at 0.15 * 20 - 1
    assert lrs[2] == pytest.approx(0.02) and lrs[0] == pytest.approx(0.02 / 25)
    assert list(checkpoints.iterdir()) == []  # checkpoint=None writes nothing


def test_train_unet_is_seeded(crops, checkpoints):
    first = _train(_tiny_unet(0), crops, 3).losses
    assert _train(_tiny_unet(0), crops, 3).losses == first


def test_train_unet_validates_steps(crops):
    for steps, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="steps"):
            _train(_tiny_unet(), crops, steps)


def _record_skips(model: unet.UNet) -> tuple[dict, list]:
    """Forward hooks (they see the arguments after the pre-hooks) recording, per up step,
    whether each call's skip was all zeros."""
    seen = {level: [] for level in range(1, 5)}

    def hook(level):
        return lambda module, args, output: seen[level].append(bool((args[1] == 0).all()))

    handles = [
        getattr(model, f"up{level}").register_forward_hook(hook(level)) for level in range(1, 5)
    ]
    return seen, handles


@pytest.mark.parametrize("levels", [(1, 2, 3, 4), (4,)])
def test_train_unet_trains_without_the_skips_inside_skips_off(crops, checkpoints, levels):
    model = _tiny_unet()
    seen, handles = _record_skips(model)
    history = _train(model, crops, 2, while_training=unet.skips_off(model, levels))
    assert history.finished
    for level in range(1, 5):  # 2 steps of one batch: 2 forwards, skips zeroed as chosen
        assert seen[level] == [level in levels] * 2, (level, seen)
    assert all(not getattr(model, f"up{k}")._forward_pre_hooks for k in range(1, 5))
    for level in seen:
        seen[level].clear()
    with torch.no_grad():
        model(crops.tensors[0])
    assert all(seen[level] == [False] for level in seen)  # the skips are back
    for handle in handles:
        handle.remove()


class _Flag(contextlib.AbstractContextManager):
    """Records whether it is active."""

    def __init__(self):
        self.active, self.entered = False, 0

    def __enter__(self):
        self.active, self.entered = True, self.entered + 1
        return self

    def __exit__(self, *exc):
        self.active = False
        return None


def test_train_unet_enters_while_training_around_the_training_only(crops, checkpoints):
    flag, during = _Flag(), []

    def dice_fn(logits, maps, ignore_index):
        during.append(flag.active)
        return dice_loss(logits, maps, ignore_index)

    history = _train(_tiny_unet(), crops, 2, while_training=flag, dice_fn=dice_fn)
    assert during == [True, True] and flag.entered == 1 and not flag.active
    record = history.records[-1]
    assert set(record["components"]) == {"cross_entropy", "dice"}
    assert record["loss"] == pytest.approx(sum(record["components"].values()))


def test_train_unet_leaves_while_training_on_an_error(crops, checkpoints):
    model = _tiny_unet()

    def broken(logits, maps, ignore_index):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _train(model, crops, 2, while_training=unet.skips_off(model), dice_fn=broken)
    assert all(not getattr(model, f"up{k}")._forward_pre_hooks for k in range(1, 5))


# ---------------------------------------------------------------------------- separate_touching


def _two_squares(second_label: int):
    """A 10x14 scene of stuff 0 (left) and 1 (right) with two touching 4x4 squares."""
    semantic = torch.zeros(1, 10, 14, dtype=torch.int64)
    semantic[:, :, 7:] = 1
    masks = torch.zeros(2, 10, 14, dtype=torch.bool)
    masks[0, 3:7, 2:6] = True
    masks[1, 3:7, 6:10] = True
    labels = torch.tensor([1, second_label])
    semantic[0][masks[0]] = 3 + 1
    semantic[0][masks[1]] = 3 + second_label
    return semantic, [(masks, labels)]


def test_separate_touching_draws_background_between_same_class_objects():
    from course_utils.metrics import pairs_separated, touching_pairs

    semantic, instances = _two_squares(second_label=1)
    before = semantic.clone()
    maps, new_instances, carved = unet_training.separate_touching(semantic, instances, [0, 1, 2])
    assert torch.equal(semantic, before), "the input maps must not change"
    assert carved == 8  # column 5 of the first square and column 6 of the second
    assert set(maps[0, 3:7, 5].tolist()) <= {0, 1} and set(maps[0, 3:7, 6].tolist()) <= {0, 1}
    assert (maps[0, 3:7, 2:5] == 4).all() and (maps[0, 3:7, 7:10] == 4).all()
    masks, labels = new_instances[0]
    assert not masks[0, :, 5].any() and not masks[1, :, 6].any()
    pairs = touching_pairs(*instances[0])
    assert pairs == [(0, 1)]
    apart = pairs_separated(maps[0], instances[0][0], labels, pairs, lambda k: 3 + k)
    assert apart.tolist() == [True]


def test_separate_touching_leaves_different_classes_alone():
    semantic, instances = _two_squares(second_label=2)
    maps, new_instances, carved = unet_training.separate_touching(semantic, instances, [0, 1, 2])
    assert carved == 0
    assert torch.equal(maps, semantic)
    assert torch.equal(new_instances[0][0], instances[0][0])


def test_separate_touching_rejects_mismatched_inputs():
    semantic, instances = _two_squares(second_label=1)
    with pytest.raises(ValueError, match="one \\(masks, labels\\) pair per map"):
        unet_training.separate_touching(semantic, instances * 2, [0, 1])
    with pytest.raises(ValueError, match="int64"):
        unet_training.separate_touching(semantic.float(), instances, [0, 1])
