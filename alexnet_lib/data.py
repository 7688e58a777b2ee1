"""Datasets for training and evaluation: CIFAR-10, image folders, and offline fallbacks.

:func:`build_data` returns a :class:`DataBundle`: CPU loaders that yield uint8 batches and two
:class:`~alexnet_lib.augment.BatchTransform` modules that the trainer runs on the device.
Small datasets (CIFAR-10, the digits) live in memory as one uint8 tensor and are served by
indexing it with a slice of a permutation; no per-image Python work.

Where the data is found (:func:`resolve_data_root`): an explicit ``root`` argument, else the
directory in the environment variable ``ALEXNET_DATA``, else the default data folder: ``data/`` at
the root of the checkout this package runs from (gitignored), or ``~/.cache/alexnet_lib/data`` when
the package is installed elsewhere (``pip install``, Colab).  ``python -m alexnet_lib data`` and
``download=True`` fetch CIFAR-10 into the data root once, through torchvision's downloader, which
checks the archive's and every file's MD5; ``ALEXNET_OFFLINE=1`` forbids downloading.

Missing data is an error (FileNotFoundError naming the data root and how to get the data), except
with ``fallback=True``, where one line says so and scikit-learn's handwritten digits stand in: the
notebooks' demos on a machine without the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pathlib
import pickle
import shlex
import shutil
import socket
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler, Subset
from torchvision.datasets import ImageFolder
from tqdm.auto import tqdm

from .augment import PCA_SCALINGS, BatchTransform, ColourPCA, ResizeCenterCrop, fit_colour_pca
from .checkpoint import CheckpointError, load_tensors
from .files import write_atomically
from .paper import INPUT_SIZE, PCA_STD

DATA_ENV = "ALEXNET_DATA"
# Set to anything non-empty: never download (CI's check of the offline path, machines without a network).
OFFLINE_ENV = "ALEXNET_OFFLINE"
# Seconds a download may wait for the network before it gives up (torchvision sets no timeout).
DOWNLOAD_TIMEOUT = 30
DATASETS = ("cifar10", "digits", "imagefolder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
DIGITS_SOURCE = "scikit-learn digits (offline fallback)"
# The digits have no official split: a fixed 20% stratified validation set, the same for every run.
DIGITS_VAL_FRACTION = 0.2
SPLIT_SEED = 0
# Image folders are too big to average in full each run: the statistics use this many training images.
FOLDER_STATS_IMAGES = 2000
# Below this many files, decoding in the main process beats starting a pool.
POOL_MIN_FILES = 2000


def resolve_data_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """The data root: ``root`` if given, else ``$ALEXNET_DATA`` if set, else :func:`default_data_root`."""
    if root is not None and str(root) != "":
        return pathlib.Path(root).expanduser()
    from_env = os.environ.get(DATA_ENV)
    return pathlib.Path(from_env).expanduser() if from_env else default_data_root()


def default_data_root() -> pathlib.Path:
    """``data/`` of the checkout this package runs from, else ``data/`` in the user cache (an installed package)."""
    checkout = pathlib.Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return user_cache_dir() / "data"


@dataclass
class ImageTensors:
    """A whole split held in memory."""

    images: Tensor  # uint8, (N, 3, H, W), CPU
    labels: Tensor  # int64, (N,)
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != (self.images.shape[0],):
            expected = f"int64 of shape ({self.images.shape[0]},)"
            raise ValueError(f"labels must be {expected}, got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: Tensor) -> ImageTensors:
        return ImageTensors(self.images[indices].contiguous(), self.labels[indices].contiguous(), self.classes)


@dataclass
class DataBundle:
    """Everything the trainer needs: loaders, device transforms, and where the data came from."""

    name: str
    source: str
    classes: list[str]
    train: DataLoader
    val: DataLoader
    train_transform: nn.Module
    eval_transform: nn.Module
    input_size: int
    train_sampler: DistributedSampler | None = field(default=None, repr=False)
    # With a hold-out, ``val`` holds training images and ``test`` the test set, scored once at the end.
    test: DataLoader | None = None
    # The training images in a fixed order, for measuring the error on them without augmentation.
    train_in_order: DataLoader | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def set_epoch(self, epoch: int) -> None:
        """Reseed shuffling and augmentation from (seed, epoch), so resumed runs repeat exactly."""
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        if hasattr(self.train_transform, "set_epoch"):
            self.train_transform.set_epoch(epoch)


class TensorBatches(Dataset):
    """Indexed by a whole list of indices at once, so one DataLoader step is one tensor gather."""

    def __init__(self, data: ImageTensors):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.data.images.index_select(0, index), self.data.labels.index_select(0, index)


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, ... in order: a deterministic evaluation shard, no padding."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def stratified_indices(labels: Tensor, k: int | None, seed: int = SPLIT_SEED) -> Tensor:
    """The first ``k`` indices of a seeded shuffle taken class by class in turn, sorted.

    Every class gets k // num_classes images (give or take one) as long as it has them.
    ``k=None`` or k >= len(labels) selects everything.
    """
    n = labels.shape[0]
    if k is None or k >= n:
        return torch.arange(n)
    if k < 1:
        raise ValueError(f"limit must be a positive number of images, got {k}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    rank_in_class = torch.empty(n, dtype=torch.int64)
    for value in shuffled.unique():
        where = (shuffled == value).nonzero().squeeze(1)
        rank_in_class[where] = torch.arange(where.numel())
    key = rank_in_class * (int(labels.max()) + 1) + shuffled
    chosen = order[torch.sort(key, stable=True).indices[:k]]
    return chosen.sort().values


def hold_out(train: ImageTensors, k: int) -> tuple[ImageTensors, ImageTensors]:
    """(the rest, ``k`` held-out images): a fixed class-balanced validation set taken from ``train``.

    The paper's plateau rule watches "the validation error rate" (section 5), and its validation
    set is not its test set: here the plateau rule and early stopping see only training images.
    """
    if not 0 < k < len(train):
        raise ValueError(f"holdout must be between 1 and {len(train) - 1} training images, got {k}")
    held = stratified_indices(train.labels, k)
    kept = torch.ones(len(train), dtype=torch.bool)
    kept[held] = False
    return train.subset(kept.nonzero().squeeze(1)), train.subset(held)


# ---------------------------------------------------------------- offline fallbacks


def load_digits_split(limit: int | None = None, val_limit: int | None = None) -> tuple[ImageTensors, ImageTensors]:
    """scikit-learn's 1,797 handwritten digits as 8x8 grey images copied into 3 uint8 channels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # The digits' pixel values run from 0 to 16.
    grey = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(grey)[:, None].repeat(1, 3, 1, 1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_VAL_FRACTION, stratify=digits.target, random_state=SPLIT_SEED
    )
    classes = [str(d) for d in range(10)]
    train = ImageTensors(images[np.sort(train_idx)], labels[np.sort(train_idx)], classes)
    val = ImageTensors(images[np.sort(val_idx)], labels[np.sort(val_idx)], classes)
    return train.subset(stratified_indices(train.labels, limit)), val.subset(stratified_indices(val.labels, val_limit))


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """scikit-learn's two bundled photos as (file name, HxWx3 uint8 array): offline preprocessing demos."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return [(pathlib.Path(name).name, image) for name, image in zip(bunch.filenames, bunch.images)]


# ---------------------------------------------------------------- CIFAR-10


def find_cifar10(root: pathlib.Path) -> tuple[str, pathlib.Path] | None:
    """("folder", dir holding train/ and test/) or ("torchvision", root) or None."""
    for candidate in (root / "cifar10", root):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return "folder", candidate
    if (root / "cifar-10-batches-py").is_dir():
        return "torchvision", root
    return None


def load_cifar10(
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    limit: int | None = None,
    val_limit: int | None = None,
) -> tuple[ImageTensors, ImageTensors, str]:
    """CIFAR-10's training and test splits in memory, and a one-line description of the source.

    Raises FileNotFoundError (with a one-line message) when the data is neither found nor downloaded.
    """
    kind, where = fetch_cifar10(root) if download else _found_cifar10(resolve_data_root(root))
    if kind == "folder":
        check_same_classes(where / "train", where / "test")
        train = load_image_folder_tensors(where / "train", limit=limit)
        test = load_image_folder_tensors(where / "test", limit=val_limit)
        return train, test, f"CIFAR-10 image folders in {where}"
    train, test = (_read_cifar10_batches(where / "cifar-10-batches-py", split) for split in (True, False))
    train = train.subset(stratified_indices(train.labels, limit))
    test = test.subset(stratified_indices(test.labels, val_limit))
    return train, test, f"CIFAR-10 in torchvision's format in {where / 'cifar-10-batches-py'}"


def _found_cifar10(root: pathlib.Path) -> tuple[str, pathlib.Path]:
    found = find_cifar10(root)
    if found is None:
        raise FileNotFoundError(
            f"CIFAR-10 not found under {root} (looked for cifar10/train, train/ and cifar-10-batches-py); "
            f"get it with `python -m alexnet_lib data --data-root {shlex.quote(str(root))}`, "
            f"or set {DATA_ENV} (--data-root) to a folder that holds it"
        )
    return found


def fetch_cifar10(root: str | os.PathLike | None = None) -> tuple[str, pathlib.Path]:
    """CIFAR-10 under the data root as :func:`find_cifar10` names it, downloaded there first when missing.

    torchvision's downloader checks the MD5 of the archive and of every file it holds; they are
    unpacked into a hidden folder of the data root and moved into place only when all of them check
    out, so a failed or interrupted download never leaves anything that looks like CIFAR-10.
    Raises FileNotFoundError (one line: the data root and why) when the data can't be had.
    """
    from torchvision.datasets import CIFAR10

    data_root = resolve_data_root(root)
    found = find_cifar10(data_root)
    if found is not None:
        return found
    if os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"CIFAR-10 not found under {data_root}, and {OFFLINE_ENV} forbids downloading it")
    staging = data_root / f".cifar10-download-{os.getpid()}"
    try:
        staging.mkdir(parents=True)
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            CIFAR10(str(staging), train=False, download=True)
        os.replace(staging / CIFAR10.base_folder, data_root / CIFAR10.base_folder)
    except (OSError, RuntimeError) as error:
        raise FileNotFoundError(
            f"CIFAR-10 not found under {data_root}, and downloading it failed ({type(error).__name__}: {error})"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return "torchvision", data_root


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class _UnsafePickle(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR-10 batch never holds."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and refuses every other global.

    The batches were written by Python 2's cPickle with numpy 1 (``numpy.core``); numpy 2 names the
    same function ``numpy._core.multiarray._reconstruct``.  Plain ``pickle.load`` would call whatever
    a file in the data folder names, ``os.system`` included.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _UnsafePickle(f"it asks for {module}.{name}")
        return super().find_class(module, name)


def _unpickle_cifar(path: pathlib.Path) -> dict:
    with open(path, "rb") as handle:
        try:
            batch = _CifarUnpickler(handle, encoding="latin1").load()
        except _UnsafePickle as refused:
            raise ValueError(
                f"{path} refused as unsafe: a CIFAR-10 batch holds only arrays, lists and strings, but {refused}"
            ) from None
    if not isinstance(batch, dict):
        raise KeyError(f"{path.name} holds a {type(batch).__name__}, not a dict")
    return batch


def _read_cifar10_batches(folder: pathlib.Path, train: bool) -> ImageTensors:
    """The pickled batches of torchvision's (and Krizhevsky's) python version of CIFAR-10."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = [], []
    try:
        for name in names:
            batch = _unpickle_cifar(folder / name)
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += batch["labels"]
        classes = list(_unpickle_cifar(folder / "batches.meta")["label_names"])
    except (OSError, KeyError, EOFError, pickle.UnpicklingError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise FileNotFoundError(f"CIFAR-10 in {folder} is incomplete or damaged ({problem})") from error
    return ImageTensors(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64), classes)


# ---------------------------------------------------------------- image folders decoded into memory


def class_folders(split_dir: pathlib.Path) -> list[str]:
    """The sorted class folders of ``split_dir``; hidden folders (``.ipynb_checkpoints``, ...) are not classes."""
    classes = sorted(entry.name for entry in split_dir.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"no class folders in {split_dir}")
    return classes


def check_same_classes(train_dir: pathlib.Path, other_dir: pathlib.Path) -> None:
    """ValueError unless two splits hold the same class folders.

    A label is a class's position in the sorted list, so one folder missing from a split would
    shift every label after it, and an extra one would give labels the network has no output for.
    """
    train, other = class_folders(train_dir), class_folders(other_dir)
    if train != other:
        differences = [f"{label} {', '.join(names)}" for label, names in (
            (f"missing from {other_dir}:", sorted(set(train) - set(other))),
            (f"not in {train_dir}:", sorted(set(other) - set(train))),
        ) if names]
        raise ValueError(f"{train_dir} and {other_dir} must hold the same class folders; {'; '.join(differences)}")


def _check_no_empty_classes(split_dir: pathlib.Path, classes: list[str], labels: Tensor) -> None:
    counts = torch.bincount(labels, minlength=len(classes))
    empty = [split_dir / classes[i] for i in (counts == 0).nonzero().flatten().tolist()]
    if empty:
        raise ValueError(f"class folders without images ({', '.join(IMAGE_SUFFIXES)}): {', '.join(map(str, empty))}")


def list_image_folder(split_dir: pathlib.Path) -> tuple[list[pathlib.Path], Tensor, list[str]]:
    """Files of ``split_dir/<class>/*`` sorted by class then name, their labels, and the sorted class names."""
    classes = class_folders(split_dir)
    files: list[pathlib.Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        members = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += members
        labels += [label] * len(members)
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    _check_no_empty_classes(split_dir, classes, label_tensor)
    return files, label_tensor, classes


def load_image_folder_tensors(
    split_dir: str | os.PathLike, limit: int | None = None, cache_dir: str | os.PathLike | None = None
) -> ImageTensors:
    """Decode equally sized images of ``split_dir/<class>/*`` into one uint8 tensor, cached on disk.

    The full decode is saved (see :func:`cache_path`) and reused by every later call.  A call
    with ``limit`` and no cache yet decodes only the chosen images and caches nothing.
    """
    split_dir = pathlib.Path(split_dir)
    files, labels, classes = list_image_folder(split_dir)
    chosen = stratified_indices(labels, limit)
    cache = cache_path(split_dir, files, cache_dir)
    cached = _load_cache(cache, labels, classes)
    if cached is not None:
        return cached.subset(chosen)
    if len(chosen) < len(files):
        picked = [files[i] for i in chosen.tolist()]
        return ImageTensors(decode_images(picked, desc=f"decoding {split_dir.name}"), labels[chosen], classes)
    data = ImageTensors(decode_images(files, desc=f"decoding {split_dir.name}"), labels, classes)
    _save_cache(cache, data, split_dir)
    return data


def decode_images(files: Sequence[pathlib.Path], desc: str = "decoding") -> Tensor:
    """Equally sized image files -> uint8 (N, 3, H, W); a process pool for many files."""
    if len(files) >= POOL_MIN_FILES and (os.cpu_count() or 1) > 1:
        processes = min(os.cpu_count() or 1, 8)
        with multiprocessing.Pool(processes) as pool:
            arrays = list(tqdm(pool.imap(_decode_rgb, files, chunksize=256), total=len(files), desc=desc))
    else:
        arrays = [_decode_rgb(f) for f in tqdm(files, desc=desc, disable=len(files) < 500)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"images of one folder must share one size to form a tensor, found sizes {sorted(shapes)}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _open_rgb(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` in RGB; a ValueError naming the file when it does not decode."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as error:  # noqa: BLE001 - PIL's plugins raise many types for a damaged file
        problem = "the file is empty (0 bytes)" if os.path.getsize(path) == 0 else f"{type(error).__name__}: {error}"
        raise ValueError(f"image {path} cannot be decoded: {problem}") from error


def _decode_rgb(path: pathlib.Path) -> np.ndarray:
    return np.asarray(_open_rgb(path))


def cache_path(
    split_dir: pathlib.Path, files: Sequence[pathlib.Path], cache_dir: str | os.PathLike | None = None
) -> pathlib.Path:
    """Where the decoded tensor of ``split_dir``, whose images are ``files`` (paths under it), lives.

    The name holds a hash of the resolved path and of every file's path within ``split_dir``,
    size and modification time, so that an edited, added, removed or moved file gives another
    cache (one ``stat`` per file: a fraction of a second for 50,000).  The folder is ``cache_dir``
    if given, else ``.alexnet_cache`` next to the data when that directory is writable, else
    ``$XDG_CACHE_HOME/alexnet_lib`` (``~/.cache/alexnet_lib``).
    """
    source = split_dir.resolve()
    digest = hashlib.sha256(str(source).encode())
    # Paths within split_dir by slicing strings (pathlib's relative_to would double the time); "x" finds
    # where names start, also for split_dir "." (whose files print as "class/name").
    inside = len(str(split_dir / "x")) - 1
    for file in files:
        info = os.stat(file)
        digest.update(f"\0{str(file)[inside:]}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    name = f"{source.parent.name}-{source.name}-{digest.hexdigest()[:16]}.pt"
    if cache_dir is not None:
        return pathlib.Path(cache_dir) / name
    beside = source.parent / ".alexnet_cache"
    if (beside.is_dir() and _writable(beside)) or (not beside.exists() and _writable(source.parent)):
        return beside / name
    return user_cache_dir() / name


def user_cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "alexnet_lib"


def _writable(directory: pathlib.Path) -> bool:
    # os.access alone says yes to root even for read-only folders; the mode bits say what was meant.
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    return os.access(directory, os.W_OK) and bool(directory.stat().st_mode & write_bits)


def _load_cache(cache: pathlib.Path, labels: Tensor, classes: list[str]) -> ImageTensors | None:
    """The split saved at ``cache``; None when there is none, or (with a one-line notice) when it is unusable."""
    if not cache.exists():
        return None
    try:
        stored = load_tensors(cache)
        data = ImageTensors(stored["images"], stored["labels"], list(stored["classes"]))
        if not torch.equal(data.labels, labels) or data.classes != classes:
            raise ValueError("its labels are not those of the folder")
    except CheckpointError as unreadable:
        problem = str(unreadable)
    except (KeyError, TypeError, ValueError) as wrong:
        problem = f"{cache} is not a decoded copy of this folder ({type(wrong).__name__}: {wrong})"
    else:
        return data
    print(f"ignoring the decoded-image cache and decoding the images again: {problem}")
    return None


def _save_cache(cache: pathlib.Path, data: ImageTensors, split_dir: pathlib.Path) -> None:
    payload = {"images": data.images, "labels": data.labels, "classes": data.classes}
    payload["source"] = str(split_dir.resolve())
    for target in (cache, user_cache_dir() / cache.name):
        try:
            write_atomically(target, lambda partial: torch.save(payload, partial))
            return
        except OSError:
            continue


# ---------------------------------------------------------------- image folders streamed from disk


def _folder_statistics(dataset: Dataset, workers: int) -> tuple[Tensor, ColourPCA]:
    """Mean image and colour PCA of up to FOLDER_STATS_IMAGES images of ``dataset``."""
    targets = torch.tensor(_targets(dataset), dtype=torch.int64)
    chosen = stratified_indices(targets, FOLDER_STATS_IMAGES)
    loader = DataLoader(Subset(dataset, chosen.tolist()), batch_size=64, num_workers=workers)
    batches = [images for images, _ in tqdm(loader, desc="mean image and colour PCA")]
    images = torch.cat(batches)
    pca = fit_colour_pca(images)
    return _mean_image(images), ColourPCA(pca.eigval, pca.eigvec, f"{pca.source}, {len(images):,} images")


def _targets(dataset: Dataset) -> list[int]:
    if isinstance(dataset, Subset):
        inner = _targets(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    return list(dataset.targets)


class ClassFolders(ImageFolder):
    """torchvision's ImageFolder under this module's rules, each image brought to 256x256.

    Hidden folders are not classes, a class folder without images is an error, and so is an
    image that does not decode (naming it).
    """

    def __init__(self, split_dir: pathlib.Path):
        # allow_empty: an empty class folder is reported below as an error in the data, not as missing data.
        super().__init__(str(split_dir), transform=ResizeCenterCrop(), loader=_open_rgb, allow_empty=True)
        _check_no_empty_classes(split_dir, self.classes, torch.tensor(self.targets, dtype=torch.int64))

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        classes = class_folders(pathlib.Path(directory))
        return classes, {name: label for label, name in enumerate(classes)}


def _imagefolder_splits(
    root: pathlib.Path, limit: int | None, val_limit: int | None
) -> tuple[Dataset, Dataset, list[str]]:
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"image folder dataset needs {root / split} with one folder per class; "
                f"set {DATA_ENV} (--data-root) to a folder holding train/<class>/ and val/<class>/"
            )
    check_same_classes(root / "train", root / "val")
    train, val = ClassFolders(root / "train"), ClassFolders(root / "val")
    train_limited = Subset(train, stratified_indices(torch.tensor(train.targets), limit).tolist())
    val_limited = Subset(val, stratified_indices(torch.tensor(val.targets), val_limit).tolist())
    return train_limited, val_limited, list(train.classes)


# ---------------------------------------------------------------- the bundle


def _mean_image(images: Tensor) -> Tensor:
    """Section 2's mean training image, (3, H, W) float32 in 0-255 units (an exact integer sum first)."""
    return (images.sum(dim=0, dtype=torch.int64).double() / images.shape[0]).float()


def _transforms(
    mean: Tensor,
    pca: ColourPCA | None,
    *,
    input_size: int,
    augment: bool,
    pca_std: float,
    pca_scaling: str | None,
    seed: int,
    rank: int,
) -> tuple[BatchTransform, BatchTransform]:
    """The training transform (augmenting when asked) and the deterministic evaluation transform."""
    colour = {"pca": pca if pca_scaling else None, "pca_std": pca_std, "pca_scaling": pca_scaling or PCA_SCALINGS[0]}
    train = BatchTransform(mean, input_size, augment=augment, seed=seed, rank=rank, **colour)
    return train, BatchTransform(mean, input_size, augment=False)


def _fallback_notice(missing: FileNotFoundError) -> None:
    """The one line that says the data is missing, how to get it, and what is used instead."""
    print(f"{missing}. Using {DIGITS_SOURCE} instead (fallback=True).")


def build_data(
    dataset: str = "cifar10",
    root: str | os.PathLike | None = None,
    *,
    input_size: int = INPUT_SIZE,
    batch_size: int = 128,
    limit: int | None = None,
    val_limit: int | None = None,
    holdout: int = 0,
    download: bool = False,
    fallback: bool = False,
    augment: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
    pca_scaling: str | None = "cuda-convnet",
    pca_std: float = PCA_STD,
) -> DataBundle:
    """Loaders and device transforms for ``dataset`` ("cifar10", "digits" or "imagefolder").

    The data comes from :func:`resolve_data_root`; ``download=True`` fetches CIFAR-10 there when it
    is missing.  Missing data raises FileNotFoundError naming the data root, unless ``fallback=True``:
    then one line says so and the digits are used (the notebooks' demos).  ``limit``/``val_limit``
    keep a class-balanced, fixed subset of that many images.  ``holdout`` > 0 sets that many of the
    (limited) training images aside, class-balanced, as the validation set; the test set
    (``val_limit`` of it) is then the bundle's ``test``.  ``workers`` loader processes decode image
    folders (in-memory data needs none).  ``pca_scaling`` picks the colour noise of training
    batches ("cuda-convnet", "fb.resnet.torch", or None for none); see
    :func:`~alexnet_lib.augment.pca_colour_offsets`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if batch_size < 1 or input_size < 1:
        raise ValueError(f"batch_size and input_size must be positive, got {batch_size} and {input_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if pca_scaling not in (*PCA_SCALINGS, None):
        raise ValueError(f"pca_scaling must be one of {PCA_SCALINGS} or None, got {pca_scaling!r}")
    options = {
        "input_size": input_size,
        "batch_size": batch_size,
        "augment": augment,
        "seed": seed,
        "rank": rank,
        "world_size": world_size,
        "pin_memory": pin_memory,
        "pca_scaling": pca_scaling,
        "pca_std": pca_std,
    }
    if dataset == "imagefolder" and holdout:
        raise ValueError("holdout applies to CIFAR-10 and the digits; an image folder data set has its own val/")
    if dataset == "imagefolder":
        data_root = resolve_data_root(root)
        try:
            train_set, val_set, classes = _imagefolder_splits(data_root, limit, val_limit)
        except FileNotFoundError as missing:
            if not fallback:
                raise
            _fallback_notice(missing)
        else:
            source = f"image folders in {data_root}"
            return _streamed_bundle(train_set, val_set, classes, source, workers=workers, **options)
    elif dataset == "cifar10":
        try:
            train, val, source = load_cifar10(root, download=download, limit=limit, val_limit=val_limit)
        except FileNotFoundError as missing:
            if not fallback:
                raise
            _fallback_notice(missing)
        else:
            return _in_memory_bundle("cifar10", source, *_validation(train, val, holdout), **options)
    train, val = load_digits_split(limit, val_limit)
    return _in_memory_bundle("digits", DIGITS_SOURCE, *_validation(train, val, holdout), **options)


def _validation(train: ImageTensors, test: ImageTensors, holdout: int) -> tuple[ImageTensors, ...]:
    """(train, val, test): without a hold-out the test set validates, as in the runs recorded before it."""
    if not holdout:
        return train, test, None
    rest, held = hold_out(train, holdout)
    return rest, held, test


def _in_memory_bundle(
    name: str,
    source: str,
    train: ImageTensors,
    val: ImageTensors,
    test: ImageTensors | None,
    *,
    batch_size: int,
    rank: int,
    world_size: int,
    pin_memory: bool,
    **transform_options,
) -> DataBundle:
    """Batches gathered from uint8 tensors by a batch sampler; statistics over the whole training split."""
    wants_pca = transform_options["augment"] and transform_options["pca_scaling"]
    pca = fit_colour_pca(train.images, seed=SPLIT_SEED) if wants_pca else None
    transforms = _transforms(_mean_image(train.images), pca, rank=rank, **transform_options)
    return _bundle(name, source, train.classes, TensorBatches(train), TensorBatches(val), transforms,
                   batch_size=batch_size, rank=rank, world_size=world_size, seed=transform_options["seed"],
                   input_size=transform_options["input_size"], loader={"pin_memory": pin_memory},
                   test_set=TensorBatches(test) if test is not None else None)


def _streamed_bundle(
    train_set: Dataset,
    val_set: Dataset,
    classes: list[str],
    source: str,
    *,
    workers: int,
    batch_size: int,
    rank: int,
    world_size: int,
    pin_memory: bool,
    **transform_options,
) -> DataBundle:
    """Images decoded and brought to 256x256 by loader workers; statistics from a sample of them."""
    mean, pca = _folder_statistics(train_set, workers)
    transforms = _transforms(mean, pca, rank=rank, **transform_options)
    loader = {"num_workers": workers, "pin_memory": pin_memory, "persistent_workers": workers > 0}
    return _bundle("imagefolder", source, classes, train_set, val_set, transforms, batch_size=batch_size, rank=rank,
                   world_size=world_size, seed=transform_options["seed"], input_size=transform_options["input_size"],
                   loader=loader)


def _bundle(
    name: str,
    source: str,
    classes: list[str],
    train_set: Dataset,
    val_set: Dataset,
    transforms: tuple[nn.Module, nn.Module],
    *,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
    input_size: int,
    loader: dict,
    test_set: Dataset | None = None,
) -> DataBundle:
    """Shuffled training batches (this process's share) and sharded validation (and test) batches."""
    train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=seed)

    def batches(dataset: Dataset, sampler: Sampler) -> DataLoader:
        indices = BatchSampler(sampler, batch_size, False)
        if isinstance(dataset, TensorBatches):
            # One step gathers a whole list of indices, so the loader passes each list through as it is.
            return DataLoader(dataset, sampler=indices, batch_size=None, **loader)
        return DataLoader(dataset, batch_sampler=indices, **loader)

    train_tf, eval_tf = transforms
    return DataBundle(
        name=name,
        source=source,
        classes=classes,
        train=batches(train_set, train_sampler),
        val=batches(val_set, ShardSampler(len(val_set), rank, world_size)),
        test=batches(test_set, ShardSampler(len(test_set), rank, world_size)) if test_set is not None else None,
        train_in_order=batches(train_set, ShardSampler(len(train_set), rank, world_size)),
        train_transform=train_tf,
        eval_transform=eval_tf,
        input_size=input_size,
        train_sampler=train_sampler,
    )
