"""course_utils.viz.images: what show_image and image_grid draw (Agg backend, no display)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torchvision import tv_tensors
from viz_helpers import image as _image

from course_utils import viz
from course_utils.viz.images import as_cpu_tensor, new_axes


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_show_image_same_picture_from_tensor_tv_image_and_uint8_array():
    uint8 = np.random.default_rng(0).integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    tensor = torch.from_numpy(uint8).permute(2, 0, 1).float() / 255
    shown = []
    for image in (tensor, tv_tensors.Image(tensor), uint8, PILImage.fromarray(uint8)):
        ax = viz.show_image(image, title="picture")
        assert ax.get_title() == "picture"
        assert not ax.axison
        assert ax.images[0].get_clim() == (0.0, 1.0)
        shown.append(np.asarray(ax.images[0].get_array()))
    assert shown[0].shape == (10, 12, 3)
    np.testing.assert_allclose(shown[0], shown[1])
    np.testing.assert_allclose(shown[0], shown[2], atol=1e-6)
    np.testing.assert_allclose(shown[0], shown[3], atol=1e-6)


def test_show_image_draws_on_the_given_axes_and_shows_grey_images():
    fig, ax = plt.subplots()
    grey = _image()[:1]
    returned = viz.show_image(grey, ax=ax)
    assert returned is ax and len(fig.axes) == 1
    shown = ax.images[0]
    np.testing.assert_allclose(np.asarray(shown.get_array()), grey[0].numpy())
    assert shown.get_cmap().name == "gray"
    assert ax.get_title() == ""


@pytest.mark.parametrize(
    "image, error, words",
    [
        (torch.rand(3, 8, 8) * 255, ValueError, "[0, 1]"),
        (torch.rand(8, 8, 3), ValueError, "CHW"),
        (torch.rand(2, 3, 8, 8), ValueError, "batch"),
        (np.zeros((3, 8, 8), dtype=np.uint8), ValueError, "CHW"),
        (np.full((8, 8, 3), 200.0), ValueError, "[0, 1]"),
        (np.full((8, 8, 3), 200.0), ValueError, "divide by 255"),
        (np.zeros((8, 8, 3), dtype=np.int32), TypeError, "uint8"),
        ("image.png", TypeError, "tensor"),
    ],
)
def test_show_image_rejects_what_is_not_an_image(image, error, words):
    with pytest.raises(error) as info:
        viz.show_image(image)
    assert words in str(info.value)


def test_to_display_array_keeps_values():
    image = _image()
    array = viz.to_display_array(image)
    assert array.shape == (24, 32, 3)
    np.testing.assert_allclose(array, image.permute(1, 2, 0).numpy())
    uint8_tensor = (image * 255).to(torch.uint8)
    np.testing.assert_allclose(
        viz.to_display_array(uint8_tensor), uint8_tensor.permute(1, 2, 0).numpy() / 255, atol=1e-6
    )


def test_to_display_array_grey_rgba_and_two_dimensional_inputs():
    rgba = np.random.default_rng(1).integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    np.testing.assert_allclose(viz.to_display_array(rgba), rgba[..., :3] / 255, atol=1e-6)
    grey = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_allclose(viz.to_display_array(grey), grey)
    np.testing.assert_allclose(viz.to_display_array(grey[..., None]), grey)
    np.testing.assert_allclose(viz.to_display_array(torch.from_numpy(grey)), grey)
    assert viz.to_display_array(torch.from_numpy(grey)[None]).shape == (5, 6)


def test_image_grid_has_one_axes_per_image_and_hides_the_rest():
    images = [_image(seed=i) for i in range(5)]
    fig, axes = viz.image_grid(images, ncols=3, titles=[f"#{i}" for i in range(5)])
    assert len(axes) == 6 and len(fig.axes) == 6
    assert [ax.get_visible() for ax in axes] == [True] * 5 + [False]
    assert [ax.get_title() for ax in axes[:5]] == [f"#{i}" for i in range(5)]
    for image, ax in zip(images, axes):
        np.testing.assert_allclose(
            np.asarray(ax.images[0].get_array()), image.permute(1, 2, 0).numpy()
        )
    assert tuple(fig.get_size_inches()) == pytest.approx((3 * 2.6, 2 * 2.6 + 2 * 0.3))


def test_image_grid_accepts_a_batch_and_empty_cells():
    batch = torch.rand(2, 3, 8, 8)
    fig, axes = viz.image_grid(batch, ncols=4)
    assert len(axes) == 2  # never more columns than images
    np.testing.assert_allclose(
        np.asarray(axes[1].images[0].get_array()), batch[1].permute(1, 2, 0).numpy()
    )
    fig, axes = viz.image_grid([_image(), None], ncols=2, titles=["shown", "left empty"])
    assert len(axes[0].images) == 1 and len(axes[1].images) == 0
    assert axes[1].get_title() == "left empty" and not axes[1].axison
    fig, axes = viz.image_grid([_image()], figsize=(3.0, 2.0))
    assert tuple(fig.get_size_inches()) == pytest.approx((3.0, 2.0))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"images": []}, ValueError),
        ({"images": [torch.rand(3, 4, 4)], "titles": ["a", "b"]}, ValueError),
        ({"images": [torch.rand(3, 4, 4)], "ncols": 0}, ValueError),
        ({"images": [torch.rand(3, 4, 4)], "ncols": 2.0}, TypeError),
        ({"images": torch.rand(3, 4, 4)}, TypeError),
        ({"images": "picture.png"}, TypeError),
    ],
)
def test_image_grid_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        viz.image_grid(**kwargs)


def test_as_cpu_tensor_strips_tv_tensors_and_converts_arrays():
    boxes = tv_tensors.BoundingBoxes([[1.0, 2.0, 3.0, 4.0]], format="XYXY", canvas_size=(8, 8))
    plain = as_cpu_tensor(boxes, "boxes")
    assert type(plain) is torch.Tensor and plain.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    flipped = np.arange(6).reshape(2, 3)[:, ::-1]  # negative strides
    assert as_cpu_tensor(flipped, "x").tolist() == [[2, 1, 0], [5, 4, 3]]
    assert as_cpu_tensor([1, 2], "x").tolist() == [1, 2]
    assert not as_cpu_tensor(torch.ones(2, requires_grad=True), "x").requires_grad
    with pytest.raises(TypeError, match="labels"):
        as_cpu_tensor("1, 2", "labels")


def test_new_axes_reuses_given_axes_and_rejects_others():
    fig, ax = plt.subplots()
    assert new_axes(ax) is ax
    created = new_axes(None, size=3.0)
    assert tuple(created.figure.get_size_inches()) == pytest.approx((3.0, 3.0))
    with pytest.raises(TypeError, match="Axes"):
        new_axes(fig)
