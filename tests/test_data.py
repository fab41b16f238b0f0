"""Data loading, verification, split and standardization."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import write_idx
from sklearn.preprocessing import StandardScaler

from tuning import data
from tuning.errors import DataError, UsageError


@pytest.fixture(scope="module")
def real_train(data_dir):
    return data.load_arrays(data_dir, "train")


def test_real_files_load_and_verify(data_dir, real_train):
    x, y, source = real_train
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10
    assert source.kind == "dir"
    assert source.sha256["train-images-idx3-ubyte.gz"] == data.FILES["train_images"].sha256
    x_test, y_test, _ = data.load_arrays(data_dir, "test")
    assert x_test.shape == (10000, 28, 28) and np.bincount(y_test).tolist() == [1000] * 10


def test_env_variable_names_the_folder(data_dir, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(data_dir))
    assert data.resolve_source(None) == ("dir", data_dir)


def test_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        data.resolve_source(tmp_path / "nope")


@pytest.fixture
def copied_dir(data_dir, tmp_path):
    """A copy of the (small) label files plus symlinked image files, to damage freely."""
    for spec in data.FILES.values():
        src = data_dir / spec.name
        if "labels" in spec.name:
            shutil.copy(src, tmp_path / spec.name)
        else:
            (tmp_path / spec.name).symlink_to(src)
    return tmp_path


def test_missing_file(copied_dir):
    (copied_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing data file .*train-labels"):
        data.load_arrays(copied_dir, "train")


def test_truncated_file(copied_dir):
    path = copied_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated"):
        data.load_arrays(copied_dir, "train")


def test_corrupt_file(copied_dir):
    (copied_dir / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(DataError, match="corrupt or truncated"):
        data.load_arrays(copied_dir, "train")


def test_wrong_checksum(copied_dir):
    # Well-formed: right magic, right shape, valid labels, but not the original content.
    labels = np.tile(np.arange(10), 6000)
    write_idx(copied_dir / "train-labels-idx1-ubyte.gz", labels, 2049)
    with pytest.raises(DataError, match="fails its checksum"):
        data.load_arrays(copied_dir, "train")
    x, y, _ = data.load_arrays(copied_dir, "train", verify=False)
    assert (y == labels).all()


def test_wrong_shape_and_magic(copied_dir):
    path = copied_dir / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(100), 2049)
    with pytest.raises(DataError, match="holds shape"):
        data.load_arrays(copied_dir, "train")
    write_idx(path, np.zeros(60000), 2051)
    with pytest.raises(DataError, match="magic number 2051"):
        data.load_arrays(copied_dir, "train")


def test_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(10), 600)
    idx = np.arange(len(y))  # images stand in as their own index
    a = data.split_train_valid(idx, y, seed=1)
    b = data.split_train_valid(idx, y, seed=1)
    c = data.split_train_valid(idx, y, seed=2)
    x_tr, y_tr, x_va, y_va = a
    assert len(x_tr) == 4800 and len(x_va) == 1200
    assert np.bincount(y_tr).tolist() == [480] * 10
    assert np.bincount(y_va).tolist() == [120] * 10
    assert not set(x_tr) & set(x_va)
    assert set(x_tr) | set(x_va) == set(idx)
    assert all((p == q).all() for p, q in zip(a, b, strict=True))
    assert not (a[0] == c[0]).all()


def test_subset_keeps_proportions_and_its_valid_comes_from_the_full_valid():
    y = np.repeat(np.arange(10), 600)
    idx = np.arange(len(y))
    _, _, full_va, _ = data.split_train_valid(idx, y, seed=3)
    x_tr, y_tr, x_va, y_va = data.split_train_valid(idx, y, seed=3, subset=400)
    assert len(x_tr) == 400 and len(x_va) == 100
    assert np.bincount(y_tr).tolist() == [40] * 10
    assert np.bincount(y_va).tolist() == [10] * 10
    assert set(x_va) <= set(full_va)


@pytest.mark.parametrize("subset, message", [(10, "too small"), (5000, "larger than")])
def test_bad_subset(subset, message):
    y = np.repeat(np.arange(10), 600)
    with pytest.raises(UsageError, match=message):
        data.split_train_valid(np.arange(len(y)), y, seed=0, subset=subset)


def test_standardizer_is_fitted_on_train_only(data_dir):
    splits = data.load_splits(data_dir, seed=0, subset=2000)
    assert splits.sizes() == {"train": 2000, "valid": 500}
    flat = splits.x_train.reshape(len(splits.x_train), -1).astype(np.float64)
    scaler = StandardScaler().fit(flat)
    np.testing.assert_allclose(splits.mean.ravel(), scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(splits.variance.ravel(), scaler.scale_**2, rtol=1e-5)
    valid_mean = splits.x_valid.reshape(len(splits.x_valid), -1).mean(axis=0)
    assert not np.allclose(splits.mean.ravel(), valid_mean, rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_standardizer_equals_standard_scaler_with_constant_pixels(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5000, 6, 6)).astype(dtype)
    x[:, 0, 0] = 0  # a constant pixel: StandardScaler's scale_ is 1 there
    x[:, 1, 1] = 255
    x[:, 2, 2] = np.where(np.arange(5000) == 7, 1, 0)  # nearly constant: tiny variance
    mean, variance = data.fit_standardizer(x)
    scaler = StandardScaler().fit(x.reshape(len(x), -1).astype(np.float64))
    np.testing.assert_array_equal(mean.ravel(), scaler.mean_.astype(np.float32))
    np.testing.assert_allclose(variance.ravel(), (scaler.scale_**2).astype(np.float32), rtol=1e-6)
    assert variance[0, 0] == variance[1, 1] == 1.0
    assert 0 < variance[2, 2] < 1e-3


def test_as_dataset_batches_every_image_once_per_epoch_in_a_new_order():
    import keras

    from hypermodels.inputs import as_dataset

    x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2)
    y = np.arange(10)
    keras.utils.set_random_seed(3)
    ds = as_dataset(x, y, 4, shuffle=True)
    assert ds.options().autotune.enabled is False
    epochs = [[(bx.numpy(), by.numpy()) for bx, by in ds] for _ in range(2)]
    for batches in epochs:
        assert [len(by) for _, by in batches] == [4, 4, 2]  # the last batch is partial
        order = np.concatenate([by for _, by in batches])
        assert sorted(order) == list(range(10))
        for bx, by in batches:  # images stay with their labels
            assert np.array_equal(bx, x[by])
    first, second = (np.concatenate([by for _, by in b]) for b in epochs)
    assert not np.array_equal(first, second)  # reshuffled each epoch
    keras.utils.set_random_seed(3)
    again = np.concatenate([by.numpy() for _, by in as_dataset(x, y, 4, shuffle=True)])
    assert np.array_equal(again, first)  # reproducible from the seed
    plain = np.concatenate([by.numpy() for _, by in as_dataset(x, y, 4, shuffle=False)])
    assert np.array_equal(plain, y)


def test_trials_get_arrays_as_datasets_and_everything_else_untouched():
    import tensorflow as tf

    from hypermodels.inputs import arrays_as_datasets

    x, y = np.zeros((10, 2, 2), np.uint8), np.arange(10)
    kwargs = {"batch_size": 4, "shuffle": True, "validation_data": (x, y), "epochs": 3}
    args, fit_kwargs = arrays_as_datasets((x, y), kwargs)
    assert len(args) == 1 and isinstance(args[0], tf.data.Dataset)
    assert [len(b) for _, b in args[0]] == [4, 4, 2]  # the batch size moved into the data
    assert isinstance(fit_kwargs["validation_data"], tf.data.Dataset)
    assert fit_kwargs["shuffle"] is False and "batch_size" not in fit_kwargs
    assert fit_kwargs["epochs"] == 3 and kwargs["batch_size"] == 4  # the caller's dict kept
    ds = args[0]
    assert arrays_as_datasets((ds,), {"epochs": 1}) == ((ds,), {"epochs": 1})


def test_frozen_startup_objects_are_unfrozen_and_trial_garbage_still_collected():
    import gc
    import weakref

    from tuning.engine import frozen_startup_objects

    class Node:
        pass

    with frozen_startup_objects():
        assert gc.get_freeze_count() > 0
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only the collector frees
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None
    assert gc.get_freeze_count() == 0
