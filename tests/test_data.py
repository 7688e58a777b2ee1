"""Finding, downloading, loading, caching and batching the data (alexnet_lib.data)."""

import hashlib
import http.server
import io
import os
import pathlib
import pickle
import pickletools
import shutil
import tarfile
import threading
import urllib.error
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet_lib import data
from alexnet_lib.data import (
    DATA_ENV,
    DIGITS_SOURCE,
    OFFLINE_ENV,
    DataBundle,
    ImageTensors,
    build_data,
    cache_path,
    default_data_root,
    find_cifar10,
    list_image_folder,
    load_cifar10,
    resolve_data_root,
    sample_photos,
    stratified_indices,
)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_tree(split_dir, classes, per_class, side=32, seed=0, suffix=".png"):
    """Random images as split_dir/<class>/<i>.png; returns {(class, i): HxWx3 array}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        (split_dir / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(split_dir / name / f"{i:03d}{suffix}")
            written[name, i] = pixels
    return written


def cifar_batch_pickle(batch):
    """``batch`` pickled as CIFAR-10's python files are: Python 2's cPickle (protocol 2) and numpy 1.

    Arrays are written as ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')`` with
    their bytes as a Latin-1 string, which is what those files hold and what the loader admits.
    """

    class Py2Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, np.ndarray):
                state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
                return np.ndarray.__reduce__(obj)[0], (np.ndarray, (0,), "b"), state
            return NotImplemented

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(batch)
    # numpy 2 names the module numpy._core; the files (and Python 2's numpy) say numpy.core.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar_batches(folder, images_per_batch=4, seed=0):
    """CIFAR-10's python version in miniature: data_batch_1..5, test_batch and batches.meta."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": name, "data": rng.integers(0, 256, (images_per_batch, 3072), dtype=np.uint8),
                 "labels": [i % 10 for i in range(images_per_batch)],
                 "filenames": [f"{name}_{i}.png" for i in range(images_per_batch)]}
        (folder / name).write_bytes(cifar_batch_pickle(batch))
    meta = {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": images_per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(cifar_batch_pickle(meta))


@pytest.fixture(autouse=True)
def downloads_allowed(monkeypatch):
    """Downloads may run unless a test forbids them; CI's offline pass sets ALEXNET_OFFLINE for the whole session."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


@pytest.fixture
def fake_cifar(tmp_path):
    root = tmp_path / "data"
    train = write_tree(root / "cifar10" / "train", CIFAR10_CLASSES, per_class=3)
    test = write_tree(root / "cifar10" / "test", CIFAR10_CLASSES, per_class=2, seed=1)
    return root, train, test


def epoch_batches(bundle, epoch):
    bundle.set_epoch(epoch)
    return [(images.clone(), labels.clone()) for images, labels in bundle.train]


def test_resolve_data_root_prefers_the_argument_then_the_environment_then_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    checkout = pathlib.Path(data.__file__).resolve().parents[1]
    assert resolve_data_root() == default_data_root() == checkout / "data"
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "from_env"))
    assert resolve_data_root() == tmp_path / "from_env"
    assert resolve_data_root(tmp_path / "given") == tmp_path / "given"
    assert resolve_data_root(str(tmp_path / "given")) == tmp_path / "given"


def test_an_installed_package_keeps_its_data_in_the_user_cache(monkeypatch, tmp_path):
    # pip install or Colab: no checkout around the package, so no data/ folder beside it.
    monkeypatch.setattr(data, "__file__", str(tmp_path / "site-packages" / "alexnet_lib" / "data.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert resolve_data_root() == tmp_path / "cache" / "alexnet_lib" / "data"


def test_digits_bundle_has_the_interface_shapes_and_labels():
    bundle = build_data("digits", input_size=227, batch_size=100)
    assert isinstance(bundle, DataBundle)
    assert (bundle.name, bundle.source, bundle.num_classes, bundle.input_size) == ("digits", DIGITS_SOURCE, 10, 227)
    assert len(bundle.train.dataset) + len(bundle.val.dataset) == 1797
    images, labels = next(iter(bundle.train))
    assert images.dtype == torch.uint8 and images.shape == (100, 3, 8, 8)
    assert labels.dtype == torch.int64 and labels.shape == (100,) and 0 <= labels.min() <= labels.max() <= 9
    model_input = bundle.train_transform(images)
    assert model_input.dtype == torch.float32 and model_input.shape == (100, 3, 227, 227)
    assert bundle.eval_transform(images).shape == (100, 3, 227, 227)
    seen = torch.cat([labels for _, labels in bundle.val])
    assert len(seen) == len(bundle.val.dataset) and set(seen.tolist()) == set(range(10))


def test_one_epoch_visits_every_training_image_once():
    bundle = build_data("digits", input_size=8, batch_size=64, augment=False)

    def rows(images):
        return sorted(bytes(row.numpy()) for row in images.flatten(1))

    assert rows(torch.cat([images for images, _ in bundle.train])) == rows(bundle.train.dataset.data.images)


def test_val_loader_is_deterministic_and_unaugmented():
    bundle = build_data("digits", input_size=8, batch_size=50, augment=True)
    first = [(x.clone(), y.clone()) for x, y in bundle.val]
    bundle.set_epoch(7)
    again = list(bundle.val)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    images = first[0][0]
    assert torch.equal(bundle.eval_transform(images), images.float() - bundle.eval_transform.mean)


def test_limits_keep_a_balanced_fixed_subset():
    bundle = build_data("digits", input_size=8, limit=50, val_limit=20)
    train_labels = bundle.train.dataset.data.labels
    assert len(train_labels) == 50 and torch.bincount(train_labels, minlength=10).tolist() == [5] * 10
    assert len(bundle.val.dataset) == 20
    again = build_data("digits", input_size=8, limit=50, val_limit=20, seed=3)
    assert torch.equal(again.train.dataset.data.images, bundle.train.dataset.data.images)


def test_stratified_indices_are_sorted_unique_and_balanced():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    chosen = stratified_indices(labels, 9)
    assert torch.equal(chosen, chosen.sort().values) and len(set(chosen.tolist())) == 9
    assert torch.bincount(labels[chosen]).tolist() == [3, 3, 3]
    assert torch.bincount(labels[stratified_indices(labels, 12)]).tolist() == [5, 3, 4]
    assert torch.equal(stratified_indices(labels, None), torch.arange(20))
    with pytest.raises(ValueError, match="positive"):
        stratified_indices(labels, 0)


def test_set_epoch_repeats_batches_and_crops_and_changes_them_for_another_epoch():
    def run(bundle, epoch):
        return [(x, y, bundle.train_transform(x)) for x, y in epoch_batches(bundle, epoch)]

    def same(a, b):
        return len(a) == len(b) and all(torch.equal(u, v) for p, q in zip(a, b) for u, v in zip(p, q))

    bundle = build_data("digits", input_size=6, batch_size=256, limit=600, seed=11)
    uninterrupted = [run(bundle, epoch) for epoch in range(3)]
    assert same(run(bundle, 2), uninterrupted[2])
    assert not torch.equal(uninterrupted[1][0][1], uninterrupted[2][0][1])
    # A fresh process resumed at epoch 2 sees exactly the batches and crops of the uninterrupted run.
    resumed = build_data("digits", input_size=6, batch_size=256, limit=600, seed=11)
    assert same(run(resumed, 2), uninterrupted[2])
    other_seed = build_data("digits", input_size=6, batch_size=256, limit=600, seed=12)
    assert not same(run(other_seed, 2), uninterrupted[2])


def test_world_size_two_shards_without_overlap():
    shards = [build_data("digits", input_size=8, batch_size=64, rank=r, world_size=2, seed=4) for r in (0, 1)]
    for shard in shards:
        shard.set_epoch(1)
    train = [list(shard.train_sampler) for shard in shards]
    assert len(train[0]) == len(train[1]) == 719  # 1,437 images, one repeated to even the shards
    assert len(set(train[0]) | set(train[1])) == len(shards[0].train.dataset) == 1437
    assert sum(len(batch) for shard in shards for batch in shard.val.sampler) == len(shards[0].val.dataset)
    assert sum(len(y) for shard in shards for _, y in shard.val) == len(shards[0].val.dataset)
    with pytest.raises(ValueError, match="rank"):
        build_data("digits", rank=2, world_size=2)


def test_cifar10_image_folders_load_and_are_cached(fake_cifar, monkeypatch):
    root, train_pixels, test_pixels = fake_cifar
    bundle = build_data("cifar10", root=root, input_size=32, batch_size=8, augment=False)
    assert bundle.name == "cifar10" and bundle.classes == CIFAR10_CLASSES
    assert str(root / "cifar10") in bundle.source
    train = bundle.train.dataset.data
    assert train.images.shape == (30, 3, 32, 32) and len(bundle.val.dataset) == 20
    # Sorted by class then file name: image 3k+i is file i of class k.
    assert torch.equal(train.images[4], torch.from_numpy(train_pixels["automobile", 1]).permute(2, 0, 1))
    assert train.labels.tolist() == [k for k in range(10) for _ in range(3)]
    caches = sorted((root / "cifar10" / ".alexnet_cache").glob("*.pt"))
    assert [p.name.split("-")[1] for p in caches] == ["test", "train"]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although a cache exists")

    monkeypatch.setattr(data, "decode_images", no_decoding)
    cached = build_data("cifar10", root=root, input_size=32, batch_size=8, augment=False)
    assert torch.equal(cached.train.dataset.data.images, train.images)
    assert torch.equal(cached.val.dataset.data.labels, bundle.val.dataset.data.labels)


def test_a_limited_first_load_decodes_only_what_it_needs(fake_cifar):
    root, _, _ = fake_cifar
    bundle = build_data("cifar10", root=root, input_size=32, limit=10, val_limit=10)
    assert torch.bincount(bundle.train.dataset.data.labels).tolist() == [1] * 10
    assert not (root / "cifar10" / ".alexnet_cache").exists()
    full = build_data("cifar10", root=root, input_size=32)
    limited_after_cache = build_data("cifar10", root=root, input_size=32, limit=10, val_limit=10)
    assert torch.equal(limited_after_cache.train.dataset.data.images, bundle.train.dataset.data.images)
    assert len(full.train.dataset) == 30


def test_cache_goes_to_the_user_cache_when_the_data_is_read_only(fake_cifar, monkeypatch, tmp_path):
    root, _, _ = fake_cifar
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    folder = root / "cifar10"
    folder.chmod(0o555)
    try:
        where = cache_path(folder / "train", list_image_folder(folder / "train")[0])
        build_data("cifar10", root=root, input_size=32)
    finally:
        folder.chmod(0o755)
    assert where.parent == tmp_path / "user_cache" / "alexnet_lib"
    assert where.exists() and not (folder / ".alexnet_cache").exists()


def _train_images(root):
    return load_cifar10(root)[0]


def test_the_cache_follows_edited_added_removed_and_moved_files(fake_cifar, monkeypatch):
    # Before: the cache was keyed by the folder and the number of files only, so all four reused stale images.
    root, train_pixels, _ = fake_cifar
    train = root / "cifar10" / "train"
    first = _train_images(root)
    keys = {cache_path(train, list_image_folder(train)[0]).name}

    edited = np.zeros((32, 32, 3), dtype=np.uint8)
    Image.fromarray(edited).save(train / "bird" / "001.png")
    assert torch.equal(_train_images(root).images[7], torch.from_numpy(edited).permute(2, 0, 1))
    keys.add(cache_path(train, list_image_folder(train)[0]).name)

    # Same bytes back, but a new modification time: the size alone would not tell.
    Image.fromarray(train_pixels["bird", 1]).save(train / "bird" / "001.png")
    os.utime(train / "bird" / "001.png", ns=(0, 12345))
    assert torch.equal(_train_images(root).images, first.images)
    keys.add(cache_path(train, list_image_folder(train)[0]).name)

    Image.fromarray(edited).save(train / "cat" / "100.png")
    added = _train_images(root)
    assert len(added) == 31 and added.labels.tolist().count(CIFAR10_CLASSES.index("cat")) == 4
    keys.add(cache_path(train, list_image_folder(train)[0]).name)

    (train / "cat" / "100.png").unlink()
    (train / "dog" / "000.png").rename(train / "deer" / "999.png")
    moved = _train_images(root)
    deer, dog = CIFAR10_CLASSES.index("deer"), CIFAR10_CLASSES.index("dog")
    assert moved.labels.tolist().count(deer) == 4 and moved.labels.tolist().count(dog) == 2
    assert torch.equal(moved.images[moved.labels == deer][-1], first.images[3 * dog])
    keys.add(cache_path(train, list_image_folder(train)[0]).name)
    assert len(keys) == 5


@pytest.mark.parametrize("damage", ["truncated", "not a cache"])
def test_an_unusable_cache_is_rebuilt_with_a_one_line_notice(fake_cifar, capsys, damage):
    root, _, _ = fake_cifar
    first = _train_images(root)
    cache = cache_path(root / "cifar10" / "train", list_image_folder(root / "cifar10" / "train")[0])
    if damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:1000])
    else:
        torch.save({"weights": torch.zeros(2)}, cache)
    capsys.readouterr()
    again = _train_images(root)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ignoring the decoded-image cache and decoding the images again:")
    assert str(cache) in lines[0]
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert torch.equal(_train_images(root).images, first.images) and capsys.readouterr().out == ""  # rewritten


def test_hidden_folders_are_not_classes(fake_cifar):
    # Before: an empty .ipynb_checkpoints became class 0 and shifted every label by one.
    root, _, _ = fake_cifar
    for split in ("train", "test"):
        (root / "cifar10" / split / ".ipynb_checkpoints").mkdir()
    train, test, _ = load_cifar10(root)
    assert train.classes == test.classes == CIFAR10_CLASSES
    assert train.labels.tolist() == [k for k in range(10) for _ in range(3)]


def test_a_class_missing_from_the_test_split_is_an_error_before_decoding(fake_cifar, monkeypatch):
    # Before: a missing test/airplane shifted every test label by one, and training went on.
    root, _, _ = fake_cifar
    shutil.rmtree(root / "cifar10" / "test" / "airplane")
    monkeypatch.setattr(data, "decode_images", lambda *a, **k: pytest.fail("decoded before checking the classes"))
    with pytest.raises(ValueError) as error:
        build_data("cifar10", root=root, input_size=32)
    assert str(error.value) == (f"{root / 'cifar10' / 'train'} and {root / 'cifar10' / 'test'} must hold the same "
                                f"class folders; missing from {root / 'cifar10' / 'test'}: airplane")


def test_an_extra_test_class_is_an_error(fake_cifar):
    # Before: the extra class's labels had no output unit, and the first validation crashed after a whole epoch.
    root, _, _ = fake_cifar
    write_tree(root / "cifar10" / "test", ["zebra"], per_class=1)
    with pytest.raises(ValueError, match=rf"not in {root / 'cifar10' / 'train'}: zebra$"):
        build_data("cifar10", root=root, input_size=32)


def test_an_empty_class_folder_is_an_error_naming_it(fake_cifar):
    root, _, _ = fake_cifar
    for image in (root / "cifar10" / "test" / "frog").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=rf"class folders without images .*: {root / 'cifar10' / 'test' / 'frog'}$"):
        build_data("cifar10", root=root, input_size=32)


def test_streamed_image_folders_check_their_classes_too(tmp_path):
    write_tree(tmp_path / "train", ["cats", "dogs"], per_class=2, side=40)
    write_tree(tmp_path / "val", ["cats"], per_class=2, side=40, seed=2)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    with pytest.raises(ValueError, match=rf"missing from {tmp_path / 'val'}: dogs$"):
        build_data("imagefolder", root=tmp_path, input_size=227)
    (tmp_path / "val" / "dogs").mkdir()
    with pytest.raises(ValueError, match=rf"class folders without images .*: {tmp_path / 'val' / 'dogs'}$"):
        build_data("imagefolder", root=tmp_path, input_size=227)
    (tmp_path / "val" / "dogs" / "000.png").write_bytes(b"")
    bundle = build_data("imagefolder", root=tmp_path, input_size=227, batch_size=4)
    assert bundle.classes == ["cats", "dogs"]
    with pytest.raises(ValueError, match=rf"^image {tmp_path / 'val' / 'dogs' / '000.png'} cannot be decoded: the file is empty"):
        list(bundle.val)


@pytest.mark.parametrize("pool", [False, True], ids=["in process", "process pool"])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_image_that_does_not_decode_is_an_error_naming_it(fake_cifar, monkeypatch, pool, damage):
    # Before: a traceback from inside PIL (through the pool's machinery) that did not always name the file.
    root, _, _ = fake_cifar
    bad = root / "cifar10" / "train" / "ship" / "002.png"
    bad.write_bytes(b"" if damage == "empty" else bad.read_bytes()[:200])
    if pool:
        monkeypatch.setattr(data, "POOL_MIN_FILES", 1)
        monkeypatch.setattr(data.os, "cpu_count", lambda: 2)
    problem = "the file is empty (0 bytes)" if damage == "empty" else "OSError: image file is truncated"
    with pytest.raises(ValueError) as error:
        load_cifar10(root)
    assert str(error.value).startswith(f"image {bad} cannot be decoded: {problem}")


def test_a_root_holding_train_and_test_directly_works(fake_cifar):
    root, _, _ = fake_cifar
    assert find_cifar10(root / "cifar10") == ("folder", root / "cifar10")
    assert build_data("cifar10", root=root / "cifar10", input_size=32).name == "cifar10"


def test_cifar10_in_torchvision_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    named = {arg for op, arg, _ in pickletools.genops((folder / "data_batch_1").read_bytes()) if op.name == "GLOBAL"}
    assert named == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    bundle = build_data("cifar10", root=tmp_path, input_size=32)
    assert bundle.classes == CIFAR10_CLASSES and "torchvision" in bundle.source
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")["data"][0]
    assert torch.equal(bundle.train.dataset.data.images[0].flatten(), torch.from_numpy(first))
    assert len(bundle.train.dataset) == 20 and len(bundle.val.dataset) == 4


class RunsCode:
    """Unpickling this runs a shell command: what a planted file in the data folder could do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_batch_file_that_would_run_code_is_refused_as_unsafe(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    marker = tmp_path / "code-ran"
    planted = {"data": RunsCode(f"touch {marker}"), "labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(planted, protocol=2))
    for fallback in (False, True):  # a planted file is never mistaken for missing data
        with pytest.raises(ValueError, match="refused as unsafe") as refused:
            build_data("cifar10", root=tmp_path, input_size=32, fallback=fallback)
        assert str(folder / "data_batch_3") in str(refused.value) and ".system" in str(refused.value)
    assert not marker.exists()
    # What the restriction guards against: plain pickle runs the command.
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert marker.exists()


def test_a_damaged_batch_file_is_named_in_one_line(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(FileNotFoundError, match="incomplete or damaged") as damaged:
        build_data("cifar10", root=tmp_path, input_size=32)
    assert str(folder) in str(damaged.value) and "\n" not in str(damaged.value)


def test_missing_cifar10_is_an_error_that_names_the_root_and_the_data_step(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as missing:
        build_data("cifar10", input_size=8)
    message = str(missing.value)
    assert f"CIFAR-10 not found under {tmp_path / 'nowhere'}" in message and "python -m alexnet_lib data" in message
    assert "\n" not in message


def test_with_fallback_missing_cifar10_prints_one_line_and_uses_the_digits(capsys, tmp_path):
    bundle = build_data("cifar10", root=tmp_path / "nowhere", input_size=8, fallback=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0] and "digits" in lines[0]
    assert bundle.name == "digits" and bundle.source == DIGITS_SOURCE


def test_a_failed_download_is_one_line_and_leaves_nothing(capsys, monkeypatch, tmp_path):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(FileNotFoundError, match="downloading it failed.*no network"):
        build_data("cifar10", root=tmp_path, download=True, input_size=8)
    assert list(tmp_path.iterdir()) == []
    bundle = build_data("cifar10", root=tmp_path, download=True, input_size=8, fallback=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert bundle.name == "digits" and len(lines) == 1 and "no network" in lines[0]


def test_offline_means_no_download_is_tried(monkeypatch, tmp_path):
    import torchvision.datasets

    def download(*args, **kwargs):
        raise AssertionError(f"{OFFLINE_ENV} is set, yet a download was started")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", download)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(FileNotFoundError, match=f"{OFFLINE_ENV} forbids downloading"):
        build_data("cifar10", root=tmp_path, download=True, input_size=8)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def cifar_archive(tmp_path, monkeypatch):
    """A small cifar-10-python.tar.gz served from this machine, and torchvision's CIFAR10 pointed at it."""
    import torchvision.datasets

    served = tmp_path / "served"
    folder = served / "cifar-10-batches-py"
    write_cifar_batches(folder, images_per_batch=3)
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)

    def md5(path):
        return hashlib.md5(path.read_bytes()).hexdigest()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("no_proxy", "*")  # straight to the local server, even where a proxy is configured
    cifar10 = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar10, "url", f"http://127.0.0.1:{server.server_port}/{archive.name}")
    monkeypatch.setattr(cifar10, "tgz_md5", md5(archive))
    monkeypatch.setattr(cifar10, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(cifar10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(cifar10, "meta", {**cifar10.meta, "md5": md5(folder / "batches.meta")})
    yield cifar10, folder
    server.shutdown()
    server.server_close()


def test_download_from_a_local_archive_loads(cifar_archive, tmp_path):
    _, source = cifar_archive
    root = tmp_path / "data"
    bundle = build_data("cifar10", root=root, download=True, input_size=32)
    assert bundle.name == "cifar10" and len(bundle.train.dataset) == 15 and len(bundle.val.dataset) == 3
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no archive, no staging folder
    assert (root / "cifar-10-batches-py" / "test_batch").read_bytes() == (source / "test_batch").read_bytes()
    assert find_cifar10(root) == ("torchvision", root)


@pytest.mark.parametrize("damaged", ["archive", "file inside"])
def test_a_download_that_fails_its_checksum_is_refused_and_leaves_nothing(cifar_archive, tmp_path, monkeypatch,
                                                                          damaged):
    cifar10, _ = cifar_archive
    if damaged == "archive":
        monkeypatch.setattr(cifar10, "tgz_md5", "0" * 32)
    else:
        monkeypatch.setattr(cifar10, "test_list", [["test_batch", "0" * 32]])
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="downloading it failed.*corrupted"):
        build_data("cifar10", root=root, download=True, input_size=32)
    assert find_cifar10(root) is None and list(root.iterdir()) == []


def test_image_folders_get_the_papers_preprocessing(tmp_path):
    write_tree(tmp_path / "train", ["cats", "dogs"], per_class=3, side=40, suffix=".jpg")
    write_tree(tmp_path / "val", ["cats", "dogs"], per_class=2, side=40, seed=2)
    bundle = build_data("imagefolder", root=tmp_path, input_size=227, batch_size=4)
    assert (bundle.name, bundle.classes) == ("imagefolder", ["cats", "dogs"])
    images, labels = next(iter(bundle.train))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 256, 256) and labels.dtype == torch.int64
    assert bundle.train_transform(images).shape == (4, 3, 227, 227)
    assert sum(len(y) for _, y in bundle.val) == 4


def test_missing_image_folders_are_an_error_or_with_fallback_one_line(capsys, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"needs {tmp_path / 'train'} with one folder per class"):
        build_data("imagefolder", root=tmp_path, input_size=8)
    bundle = build_data("imagefolder", root=tmp_path, input_size=8, fallback=True)
    line = capsys.readouterr().out.strip()
    assert bundle.name == "digits" and "train" in line and "\n" not in line


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="dataset must be one of"):
        build_data("mnist")
    with pytest.raises(ValueError, match="uint8"):
        ImageTensors(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"])


def test_sample_photos_are_offline_rgb_arrays():
    photos = sample_photos()
    assert [name for name, _ in photos] == ["china.jpg", "flower.jpg"]
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for _, p in photos)


@pytest.mark.cifar10
def test_real_cifar10_limited_loader():
    bundle = build_data("cifar10", input_size=24, batch_size=50, limit=200, val_limit=100)
    assert bundle.classes == CIFAR10_CLASSES and bundle.source.startswith("CIFAR-10")
    train = bundle.train.dataset.data
    assert train.images.shape == (200, 3, 32, 32) and torch.bincount(train.labels).tolist() == [20] * 10
    images, labels = next(iter(bundle.train))
    assert bundle.train_transform(images).shape == (50, 3, 24, 24)
    # Natural photos, not noise: neighbouring pixels agree far more than chance.
    pixels = train.images.float()
    assert (pixels[..., 1:] - pixels[..., :-1]).abs().mean() < 0.5 * (pixels - pixels.mean()).abs().mean()
