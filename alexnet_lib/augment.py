"""The paper's preprocessing (section 2) and data augmentation (section 4.1), batched on the device.

Images travel from the loader as uint8 tensors of their stored size (32x32 for CIFAR-10,
8x8 for the digits, 256x256 for image folders) and become model input here, one whole batch
at a time: mean subtraction, upsampling, crops, flips and PCA colour noise.  Each step is one
batched tensor operation that runs wherever the batch is, with no Python loop over images.

Pixel scale: model input is in the 0-255 range of the stored bytes minus the mean image,
with no division by a standard deviation (section 2: "We did not pre-process the images
in any other way, except for subtracting the mean activity over the training set").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.transforms import functional as TF

from .paper import INPUT_SIZE, PCA_STD, SCALE_SIZE

PCA_SCALINGS = ("cuda-convnet", "fb.resnet.torch")


@dataclass(frozen=True)
class ColourPCA:
    """Principal components of RGB pixel values, for pixels scaled to [0, 1].

    ``eigval``: (3,) eigenvalues lambda_i, largest first (variances, in (0-1 pixel units)^2);
    ``eigvec``: (3, 3) matrix whose COLUMNS are the eigenvectors p_i (rows are R, G, B).
    """

    eigval: Tensor
    eigvec: Tensor
    source: str

    def __post_init__(self) -> None:
        if tuple(self.eigval.shape) != (3,) or tuple(self.eigvec.shape) != (3, 3):
            raise ValueError(
                f"expected eigval of shape (3,) and eigvec of shape (3, 3), "
                f"got {tuple(self.eigval.shape)} and {tuple(self.eigvec.shape)}"
            )


# fb.resnet.torch, datasets/imagenet.lua (Facebook, 2016), the ``pca`` table, "computed from
# random subset of ImageNet training images"; pixels in [0, 1] (image.load(path, 3, 'float')),
# columns are eigenvectors (transforms.lua's Lighting sums eigvec[i][j] * alpha_j * eigval_j
# over j).  Krizhevsky's own ImageNet values are in no text file we could find: cuda-convnet2's
# make-data.py copies them from a pickle, input_meta, into batches.meta, whose "color_pca" entry
# convdata.py reads as (eigen-stdevs, eigenvectors) for 0-255 pixels.  For other data, fit them
# with :func:`fit_colour_pca`.
IMAGENET_PCA_FB_RESNET = ColourPCA(
    eigval=torch.tensor([0.2175, 0.0188, 0.0045]),
    eigvec=torch.tensor(
        [
            [-0.5675, 0.7192, 0.4009],
            [-0.5808, -0.0045, -0.8140],
            [-0.5836, -0.6948, 0.4203],
        ]
    ),
    source="fb.resnet.torch datasets/imagenet.lua (ImageNet, pixels in [0, 1])",
)


def fit_colour_pca(images: Tensor, max_pixels: int = 200_000, seed: int = 0) -> ColourPCA:
    """PCA of the RGB values of ``images`` (uint8, (N, 3, H, W)) with scikit-learn.

    Section 4.1 performs "PCA on the set of RGB pixel values throughout the ImageNet training
    set"; a seeded sample of at most ``max_pixels`` pixels estimates the same 3x3 covariance.
    """
    from sklearn.decomposition import PCA

    _check_batch(images, "images")
    flat = images.flatten(2)  # (N, 3, H*W), a view
    n, _, area = flat.shape
    if n * area > max_pixels:
        generator = torch.Generator().manual_seed(seed)
        which = torch.randint(0, n * area, (max_pixels,), generator=generator)
        pixels = flat[which // area, :, which % area]
    else:
        pixels = flat.permute(0, 2, 1).reshape(-1, 3)
    pca = PCA(n_components=3).fit(pixels.double().numpy() / 255.0)
    return ColourPCA(
        eigval=torch.from_numpy(pca.explained_variance_).float(),
        eigvec=torch.from_numpy(pca.components_.T.copy()).float(),
        source=f"fitted with sklearn PCA on {pixels.shape[0]:,} training pixels (pixels in [0, 1])",
    )


def pca_colour_offsets(
    n: int,
    eigval: Tensor,
    eigvec: Tensor,
    std: float = PCA_STD,
    scaling: str = "cuda-convnet",
    generator: torch.Generator | None = None,
) -> Tensor:
    """One RGB offset per image, (n, 3), in the pixel units of ``eigval``/``eigvec``.

    The paper multiplies alpha_i by the eigenvalue lambda_i.  Two codes differ:
    ``"cuda-convnet"`` (Krizhevsky's cuda-convnet2, convdata.py, ColorNoiseMakerThread, with
    ``--color-noise 0.1``) uses the eigen-STDEV sqrt(lambda_i), so the offset along p_i has
    standard deviation std * sqrt(lambda_i) whatever the pixel scale; ``"fb.resnet.torch"``
    (transforms.lua, Lighting) uses lambda_i itself, which depends on the scale and was meant
    for pixels in [0, 1].  cuda-convnet2 also shrinks each noisy training batch by 1 / (1 + 0.1)
    to keep its scale near the test data's; that step is not reproduced here.
    """
    if scaling not in PCA_SCALINGS:
        raise ValueError(f"scaling must be one of {PCA_SCALINGS}, got {scaling!r}")
    alpha = torch.randn(n, 3, generator=generator).to(eigval.device) * std
    magnitude = eigval.clamp(min=0).sqrt() if scaling == "cuda-convnet" else eigval
    # Section 4.1: add [p1, p2, p3][alpha_1 lambda_1, alpha_2 lambda_2, alpha_3 lambda_3]^T to each RGB pixel.
    return (alpha * magnitude) @ eigvec.T


def center_crop(batch: Tensor, size: int) -> Tensor:
    """The central ``size`` x ``size`` patch of every image in ``batch`` (N, C, H, W)."""
    height, width = _crop_room(batch, size)
    top, left = (height - size) // 2, (width - size) // 2
    return batch[..., top : top + size, left : left + size]


def ten_crop(batch: Tensor, size: int) -> Tensor:
    """Section 4.1's test-time views, (10, N, C, size, size).

    Order: top-left, top-right, bottom-left, bottom-right and centre patches of the images,
    then the same five patches of the mirrored images, as torchvision's ``ten_crop`` orders them.
    """
    return torch.cat([_five_crop(batch, size), _five_crop(batch.flip(-1), size)])


def _five_crop(batch: Tensor, size: int) -> Tensor:
    height, width = _crop_room(batch, size)
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
    views = [batch[..., top : top + size, left : left + size] for top, left in corners]
    return torch.stack(views + [center_crop(batch, size)])


def random_crop_params(
    n: int, room: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image top and left offsets in [0, room] and a coin flip for mirroring, on the CPU."""
    top = torch.randint(0, room + 1, (n,), generator=generator)
    left = torch.randint(0, room + 1, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator).bool()
    return top, left, flip


def crop_flip(batch: Tensor, size: int, top: Tensor, left: Tensor, flip: Tensor) -> Tensor:
    """A ``size`` x ``size`` crop at (top[i], left[i]) of image i, mirrored where flip[i]; one gather."""
    height, width = _crop_room(batch, size)
    if int(top.max()) > height - size or int(left.max()) > width - size:
        raise ValueError(f"crop offsets must leave a {size}x{size} patch inside {height}x{width} images")
    device = batch.device
    steps = torch.arange(size, device=device)
    top, left, flip = top.to(device), left.to(device), flip.to(device)
    rows = top[:, None] + steps
    cols = left[:, None] + torch.where(flip[:, None], size - 1 - steps, steps)
    n, channels = batch.shape[:2]
    return batch[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def resample_crop_flip(
    batch: Tensor, size: int, scale_size: int, top: Tensor, left: Tensor, flip: Tensor
) -> Tensor:
    """Upsample to ``scale_size``, crop ``size`` at (top, left), mirror where flip: one grid_sample.

    Equal to ``F.interpolate(batch, scale_size, mode="bilinear")`` followed by :func:`crop_flip`,
    without ever building the large intermediate image.  With align_corners=False, output pixel
    j of the crop sits at x = left + j + 0.5 in the upsampled image, which is the normalised
    coordinate 2x / scale_size - 1 in the source image too.
    """
    _check_batch(batch, "batch")
    if not 0 < size <= scale_size:
        raise ValueError(f"need 0 < size <= scale_size, got size={size}, scale_size={scale_size}")
    n, device = batch.shape[0], batch.device
    steps = torch.arange(size, device=device, dtype=torch.float32)
    top, left, flip = top.to(device), left.to(device), flip.to(device)
    columns = torch.where(flip[:, None], size - 1 - steps, steps)
    gx = 2 * (left[:, None] + columns + 0.5) / scale_size - 1
    gy = 2 * (top[:, None] + steps + 0.5) / scale_size - 1
    grid = torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], dim=-1)
    return F.grid_sample(batch, grid.to(batch.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class ResizeCenterCrop:
    """Section 2's preprocessing of one photo: "we first rescaled the image such that the shorter
    side was of length 256, and then cropped out the central 256x256 patch".

    Accepts a PIL image or an HxWx3 uint8 array; returns a uint8 tensor (3, size, size).
    Runs in loader worker processes (picklable, no state beyond ``size``).
    """

    def __init__(self, size: int = SCALE_SIZE):
        self.size = size

    def __call__(self, image: Image.Image | np.ndarray) -> Tensor:
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected an HxWx3 uint8 array, got shape {image.shape} and dtype {image.dtype}")
            image = Image.fromarray(image)
        image = TF.resize(image.convert("RGB"), self.size, interpolation=TF.InterpolationMode.BILINEAR)
        return TF.pil_to_tensor(TF.center_crop(image, self.size))

    def __repr__(self) -> str:
        return f"ResizeCenterCrop(size={self.size})"


class BatchTransform(nn.Module):
    """uint8 or float batch (N, 3, s, s) of stored images -> float32 model input (N, 3, S, S).

    1. Subtract the mean training image, per pixel AND per channel (a (3, s, s) image), as in
       section 2: "subtracting the mean activity over the training set from each pixel".
       No division by a standard deviation.  The subtraction happens at the stored resolution;
       resampling is linear, so this equals subtracting an upsampled mean afterwards.
    2. Bring the image to the model's side S = ``input_size``:
       - S > s (CIFAR-10 or digits into a 227 network): upsample to ``scale_size`` (256 for
         227, keeping the paper's 227/256 ratio), then crop S; training takes a random crop
         and a random mirror image, evaluation the centre.  One grid_sample does it all.
       - S < s (a 256 image folder into 227, or cuda-convnet's 24-of-32 CIFAR nets): random
         S x S crops with mirroring for training, the centre crop for evaluation.
       - S = s: no resampling; training mirrors at random, evaluation does nothing more.
    3. Training adds PCA colour noise when ``pca`` is given (section 4.1).

    Randomness comes from a CPU generator reseeded by :meth:`set_epoch` from (seed, epoch, rank);
    the random numbers are few (a handful per image) and move to the batch's device.
    """

    def __init__(
        self,
        mean_image: Tensor,
        input_size: int,
        *,
        augment: bool,
        pca: ColourPCA | None = None,
        pca_std: float = PCA_STD,
        pca_scaling: str = "cuda-convnet",
        scale_size: int | None = None,
        seed: int = 0,
        rank: int = 0,
    ):
        super().__init__()
        if mean_image.dim() != 3 or mean_image.shape[0] != 3 or mean_image.shape[1] != mean_image.shape[2]:
            raise ValueError(f"mean_image must be a square (3, s, s) image, got shape {tuple(mean_image.shape)}")
        if pca_scaling not in PCA_SCALINGS:
            raise ValueError(f"pca_scaling must be one of {PCA_SCALINGS}, got {pca_scaling!r}")
        self.stored_size = int(mean_image.shape[-1])
        self.input_size = input_size
        self.upsample = input_size > self.stored_size
        if scale_size is None:
            scale_size = round(input_size * SCALE_SIZE / INPUT_SIZE) if self.upsample else self.stored_size
        if scale_size < input_size:
            raise ValueError(f"scale_size {scale_size} is smaller than input_size {input_size}")
        self.scale_size = scale_size
        self.augment = augment
        self.pca_std, self.pca_scaling, self.pca_source = pca_std, pca_scaling, pca.source if pca else None
        self.seed, self.rank = seed, rank
        self.register_buffer("mean", mean_image.detach().float().clone())
        self.register_buffer("eigval", pca.eigval.float().clone() if pca else None)
        self.register_buffer("eigvec", pca.eigvec.float().clone() if pca else None)
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the crops, flips and colour noise from (seed, epoch, rank): each process draws its own."""
        self.generator.manual_seed(_mix_seed(self.seed, epoch, self.rank))

    def extra_repr(self) -> str:
        return (
            f"stored_size={self.stored_size}, scale_size={self.scale_size}, input_size={self.input_size}, "
            f"augment={self.augment}, pca={self.pca_scaling if self.eigval is not None else None}"
        )

    def centred(self, batch: Tensor) -> Tensor:
        """Float images minus the mean image, at the stored size."""
        _check_batch(batch, "batch")
        if tuple(batch.shape[1:]) != tuple(self.mean.shape):
            expected = "(N, " + ", ".join(map(str, self.mean.shape)) + ")"
            raise ValueError(f"expected images of shape {expected}, got {tuple(batch.shape)}")
        return batch.float() - self.mean

    def rescaled(self, batch: Tensor) -> Tensor:
        """Mean-subtracted images at ``scale_size``: the picture that crops are taken from."""
        x = self.centred(batch)
        if self.scale_size == self.stored_size:
            return x
        return F.interpolate(x, size=self.scale_size, mode="bilinear", align_corners=False)

    def ten_crop(self, batch: Tensor) -> Tensor:
        """Section 4.1's ten test views of every image, (10, N, 3, input_size, input_size)."""
        return ten_crop(self.rescaled(batch), self.input_size)

    def forward(self, batch: Tensor) -> Tensor:
        x = self.centred(batch)
        n, room = x.shape[0], self.scale_size - self.input_size
        if self.augment:
            top, left, flip = random_crop_params(n, room, self.generator)
        else:
            top = left = torch.full((n,), room // 2)
            flip = torch.zeros(n, dtype=torch.bool)
        if self.upsample:
            x = resample_crop_flip(x, self.input_size, self.scale_size, top, left, flip)
        elif self.augment:
            x = crop_flip(x, self.input_size, top, left, flip)
        else:
            x = center_crop(x, self.input_size)
        if self.augment and self.eigval is not None:
            offsets = pca_colour_offsets(n, self.eigval, self.eigvec, self.pca_std, self.pca_scaling, self.generator)
            # The PCA lives in [0, 1] pixel units; the input is in 0-255 units.
            x = x + 255.0 * offsets[:, :, None, None]
        return x.contiguous()


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed that differs for every tuple of non-negative integers."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _check_batch(batch: Tensor, name: str) -> None:
    if not isinstance(batch, Tensor) or batch.dim() != 4 or batch.shape[1] != 3:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, 3, H, W), got {shape}")


def _crop_room(batch: Tensor, size: int) -> tuple[int, int]:
    if batch.dim() < 2:
        raise ValueError(f"expected images (..., H, W), got shape {tuple(batch.shape)}")
    height, width = batch.shape[-2:]
    if not 0 < size <= min(height, width):
        raise ValueError(f"crop size must be in 1..{min(height, width)} for {height}x{width} images, got {size}")
    return height, width
