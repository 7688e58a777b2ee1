"""Crops, flips, upsampling, colour noise and the paper's preprocessing (alexnet_lib.augment)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF

from alexnet_lib.augment import (
    IMAGENET_PCA_FB_RESNET,
    BatchTransform,
    ColourPCA,
    ResizeCenterCrop,
    center_crop,
    crop_flip,
    fit_colour_pca,
    pca_colour_offsets,
    resample_crop_flip,
    ten_crop,
)


def numbered(n=2, side=8):
    """Images whose every value is different, so any misplaced pixel shows."""
    return torch.arange(n * 3 * side * side, dtype=torch.float32).reshape(n, 3, side, side)


def test_center_crop_takes_the_middle():
    x = numbered(side=9)
    assert torch.equal(center_crop(x, 5), x[..., 2:7, 2:7])
    with pytest.raises(ValueError, match="crop size"):
        center_crop(x, 10)


def test_ten_crop_gives_the_corners_the_centre_and_their_mirrors():
    x, size = numbered(side=10), 6
    views = ten_crop(x, size)
    assert views.shape == (10, 2, 3, size, size)
    expected = [x[..., :6, :6], x[..., :6, 4:], x[..., 4:, :6], x[..., 4:, 4:], x[..., 2:8, 2:8]]
    for view, patch in zip(views[:5], expected):
        assert torch.equal(view, patch)
    mirrored = x.flip(-1)
    for view, patch in zip(views[5:], ten_crop(mirrored, size)[:5]):
        assert torch.equal(view, patch)
    # The same ten views, in the same order, as torchvision's ten_crop.
    assert torch.equal(views, torch.stack(TF.ten_crop(x, [size, size])))


def test_crop_flip_matches_slicing_image_by_image():
    x = numbered(n=3, side=8)
    top, left, flip = torch.tensor([0, 3, 1]), torch.tensor([2, 0, 3]), torch.tensor([False, True, True])
    out = crop_flip(x, 5, top, left, flip)
    for i in range(3):
        patch = x[i, :, top[i] : top[i] + 5, left[i] : left[i] + 5]
        assert torch.equal(out[i], patch.flip(-1) if flip[i] else patch)
    with pytest.raises(ValueError, match="offsets"):
        crop_flip(x, 5, torch.tensor([4, 0, 0]), left, flip)


def test_resample_crop_flip_equals_upsampling_then_cropping():
    x = torch.rand(3, 3, 8, 8) * 255
    top, left, flip = torch.tensor([0, 5, 9]), torch.tensor([9, 2, 0]), torch.tensor([True, False, True])
    big = F.interpolate(x, size=36, mode="bilinear", align_corners=False)
    expected = crop_flip(big, 27, top, left, flip)
    assert torch.allclose(resample_crop_flip(x, 27, 36, top, left, flip), expected, atol=1e-3)


def test_same_size_without_augmentation_only_subtracts_the_mean():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean = images.float().mean(0)
    out = BatchTransform(mean, 32, augment=False)(images)
    assert out.dtype == torch.float32
    assert torch.equal(out, images.float() - mean)


@pytest.mark.parametrize(("stored", "size"), [(8, 40), (32, 24), (32, 32), (12, 12)])
@pytest.mark.parametrize("augment", [True, False])
def test_batch_transform_shapes_and_dtype(stored, size, augment):
    images = torch.randint(0, 256, (5, 3, stored, stored), dtype=torch.uint8)
    pca = fit_colour_pca(images)
    transform = BatchTransform(images.float().mean(0), size, augment=augment, pca=pca)
    out = transform(images)
    assert out.shape == (5, 3, size, size) and out.dtype == torch.float32
    assert transform.ten_crop(images).shape == (10, 5, 3, size, size)


def test_evaluation_crop_is_the_centre_of_the_rescaled_image():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    transform = BatchTransform(images.float().mean(0), 27, augment=False, scale_size=36)
    rescaled = transform.rescaled(images)
    assert rescaled.shape == (2, 3, 36, 36)
    assert torch.allclose(transform(images), center_crop(rescaled, 27), atol=1e-3)
    assert torch.allclose(transform.ten_crop(images)[4], center_crop(rescaled, 27), atol=1e-3)


def test_transform_rejects_images_of_another_size():
    transform = BatchTransform(torch.zeros(3, 32, 32), 24, augment=True)
    with pytest.raises(ValueError, match="expected images of shape"):
        transform(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="square"):
        BatchTransform(torch.zeros(3, 32, 30), 24, augment=True)


def test_buffers_travel_with_the_module():
    transform = BatchTransform(torch.zeros(3, 8, 8), 8, augment=True, pca=IMAGENET_PCA_FB_RESNET)
    assert {"mean", "eigval", "eigvec"} <= set(transform.state_dict())
    moved = transform.to(torch.float64)
    assert moved.mean.dtype == torch.float64


def random_rotation(seed=0):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


@pytest.mark.parametrize(("scaling", "power"), [("cuda-convnet", 0.5), ("fb.resnet.torch", 1.0)])
def test_pca_noise_has_the_documented_scale(scaling, power):
    eigval, eigvec = torch.tensor([0.09, 0.01, 0.0025]), random_rotation()
    generator = torch.Generator().manual_seed(1)
    offsets = pca_colour_offsets(40_000, eigval, eigvec, std=0.1, scaling=scaling, generator=generator)
    along = offsets @ eigvec  # coordinates along p_1, p_2, p_3
    expected = 0.1 * eigval**power
    assert torch.allclose(along.std(dim=0), expected, rtol=0.03)
    assert torch.all(along.mean(dim=0).abs() < 4 * expected / 40_000**0.5)  # zero mean, within 4 standard errors


def test_transform_adds_the_colour_noise_in_0_255_units():
    eigval, eigvec = torch.tensor([0.04, 0.01, 0.0025]), random_rotation(2)
    pca = ColourPCA(eigval, eigvec, source="test")
    grey = torch.full((4000, 3, 4, 4), 128, dtype=torch.uint8)  # flat images: crops and flips change nothing
    mean = torch.full((3, 4, 4), 100.0)
    out = BatchTransform(mean, 4, augment=True, pca=pca)(grey)
    offsets = out - 28.0
    assert torch.allclose(offsets, offsets[:, :, :1, :1].expand_as(offsets), atol=1e-4)  # one RGB shift per image
    along = offsets[:, :, 0, 0] @ eigvec
    assert torch.allclose(along.std(dim=0), 255 * 0.1 * eigval.sqrt(), rtol=0.05)


def test_pca_scaling_is_checked():
    with pytest.raises(ValueError, match="scaling"):
        pca_colour_offsets(2, torch.ones(3), torch.eye(3), scaling="paper")


def test_fit_colour_pca_finds_the_grey_axis():
    grey = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8).expand(50, 3, 8, 8)
    pca = fit_colour_pca(grey)
    assert torch.allclose(pca.eigvec[:, 0].abs(), torch.full((3,), 3**-0.5), atol=1e-4)
    assert pca.eigval[0] > 0.01 and pca.eigval[1:].abs().max() < 1e-8
    expected_variance = (grey[:, 0].double() / 255).var() * 3
    assert abs(float(pca.eigval[0]) - float(expected_variance)) < 0.01 * float(expected_variance)


def test_imagenet_constants_are_orthonormal_eigenvectors():
    vectors = IMAGENET_PCA_FB_RESNET.eigvec
    assert torch.allclose(vectors.T @ vectors, torch.eye(3), atol=2e-3)
    assert torch.all(IMAGENET_PCA_FB_RESNET.eigval[:-1] >= IMAGENET_PCA_FB_RESNET.eigval[1:])


def test_set_epoch_repeats_and_changes_the_augmentation():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    transform = BatchTransform(images.float().mean(0), 24, augment=True, pca=fit_colour_pca(images), seed=5)
    transform.set_epoch(3)
    first = transform(images)
    transform.set_epoch(3)
    assert torch.equal(transform(images), first)
    transform.set_epoch(4)
    assert not torch.equal(transform(images), first)


def test_resize_center_crop_keeps_the_middle_of_the_shorter_side():
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, 100:200] = 255  # a white middle third
    out = ResizeCenterCrop(64)(wide)
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    assert out[:, :, 2:-2].min() > 200  # the crop sees only the white middle
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ResizeCenterCrop()(np.zeros((10, 10), dtype=np.uint8))


def test_each_process_draws_its_own_augmentation():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    ranks = [BatchTransform(images.float().mean(0), 24, augment=True, seed=5, rank=r) for r in (0, 1)]
    assert not torch.equal(ranks[0](images), ranks[1](images))
