"""Datasets: the bundled digits, .npz files, image folders, validation errors and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from inferedge.dnn.data import Dataset, DatasetError, load_dataset, split_dataset


@pytest.fixture(scope="module")
def digits16() -> Dataset:
    return load_dataset("digits", (3, 16, 16))


def test_digits_are_the_real_set_resized_replicated_and_standardised(digits16: Dataset) -> None:
    assert digits16.x.shape == (1797, 3, 16, 16)
    assert digits16.input_shape == (3, 16, 16)
    assert digits16.x.dtype == np.float32
    assert digits16.y.dtype == np.int64
    assert digits16.num_classes == 10
    assert digits16.name == "digits"
    np.testing.assert_array_equal(digits16.y, load_digits().target)
    assert np.array_equal(digits16.x[:, 0], digits16.x[:, 2])
    # Fixed constants from the 8x8 pixels: resizing keeps the mean, smooths the spread a little.
    assert abs(float(digits16.x.mean())) < 0.05
    assert 0.8 < float(digits16.x.std()) < 1.05


def test_digits_at_native_size_are_exactly_the_standardised_pixels() -> None:
    ds = load_dataset("digits", (1, 8, 8))
    expected = (load_digits().images / 16.0 - 0.30526) / 0.37605
    np.testing.assert_allclose(ds.x[:, 0], expected, rtol=0, atol=1e-5)


def test_digits_with_too_few_classes_is_rejected() -> None:
    with pytest.raises(DatasetError, match=r"digits: y: labels must be in 0\.\.4, found 0\.\.9"):
        load_dataset("digits", (3, 16, 16), num_classes=5)


def _write_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, allow_pickle=False, **arrays)
    return str(path)


def test_npz_nchw_uint8_is_scaled_to_unit_range(tmp_path: Path) -> None:
    x = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2) * 5
    ref = _write_npz(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2, 1]))
    ds = load_dataset(ref, (3, 2, 2))
    np.testing.assert_allclose(ds.x, x / 255.0, rtol=1e-6)
    assert ds.num_classes == 3  # largest label + 1
    assert ds.name == "a"


def test_npz_nhwc_is_transposed_and_float_is_kept(tmp_path: Path) -> None:
    nchw = np.random.default_rng(0).normal(size=(5, 3, 4, 6)).astype(np.float64)
    ref = _write_npz(tmp_path / "b.npz", x=nchw.transpose(0, 2, 3, 1), y=np.arange(5))
    ds = load_dataset(ref, (3, 4, 6), num_classes=7)
    np.testing.assert_allclose(ds.x, nchw.astype(np.float32))
    assert ds.num_classes == 7


def test_npz_grey_is_replicated_and_resized(tmp_path: Path) -> None:
    x = np.full((2, 1, 4, 4), 0.25, dtype=np.float32)
    x[1] = 0.75
    ref = _write_npz(tmp_path / "g.npz", x=x, y=np.array([0, 1]))
    ds = load_dataset(ref, (3, 10, 12))
    assert ds.x.shape == (2, 3, 10, 12)
    np.testing.assert_allclose(ds.x[0], 0.25, atol=1e-6)
    np.testing.assert_allclose(ds.x[1], 0.75, atol=1e-6)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((2, 3, 4, 4))}, "missing array 'y'"),
        ({"y": np.zeros(2, dtype=int)}, "missing array 'x'"),
        ({"x": np.zeros((3, 3, 4, 4)), "y": np.zeros(2, dtype=int)}, "x has 3 images but y has 2"),
        ({"x": np.zeros((2, 3, 4, 4)), "y": np.zeros(2)}, "y: expected a 1-D array of integer"),
        ({"x": np.zeros((2, 3, 4, 4)), "y": np.zeros((2, 1), dtype=int)}, "y: expected a 1-D"),
        ({"x": np.zeros((2, 4, 4)), "y": np.zeros(2, dtype=int)}, "x: expected N x C x H x W"),
        ({"x": np.zeros((2, 5, 4, 4)), "y": np.zeros(2, dtype=int)}, "neither 3 nor 1 channels"),
        ({"x": np.zeros((0, 3, 4, 4)), "y": np.zeros(0, dtype=int)}, "the dataset is empty"),
        ({"x": np.full((1, 3, 4, 4), np.nan), "y": np.zeros(1, dtype=int)}, "NaN or infinite"),
        (
            {"x": np.zeros((1, 3, 4, 4), dtype=np.int32), "y": np.zeros(1, dtype=int)},
            "x: expected uint8 or floating-point pixels",
        ),
        ({"x": np.zeros((2, 3, 4, 4)), "y": np.array([0, -1])}, r"labels must be in 0\.\."),
    ],
)
def test_malformed_npz_names_file_and_field(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    ref = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(ref, (3, 4, 4))
    assert "bad.npz" in str(info.value)
    assert "\n" not in str(info.value)


def test_labels_beyond_num_classes_are_rejected(tmp_path: Path) -> None:
    ref = _write_npz(tmp_path / "c.npz", x=np.zeros((2, 3, 4, 4)), y=np.array([0, 3]))
    with pytest.raises(DatasetError, match=r"c\.npz: y: labels must be in 0\.\.2, found 0\.\.3"):
        load_dataset(ref, (3, 4, 4), num_classes=3)


def test_missing_and_unreadable_npz(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.npz: no such file"):
        load_dataset(str(tmp_path / "nope.npz"), (3, 4, 4))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match=r"junk\.npz: not a readable \.npz file"):
        load_dataset(str(junk), (3, 4, 4))


def test_unknown_reference_and_bad_request(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"expected 'digits', a \.npz file or a folder"):
        load_dataset(str(tmp_path / "missing-folder"), (3, 4, 4))
    with pytest.raises(DatasetError, match="input_shape must be"):
        load_dataset("digits", (3, 0, 4))
    with pytest.raises(DatasetError, match="num_classes must be >= 1"):
        load_dataset("digits", (3, 8, 8), num_classes=0)


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_labels_follow_sorted_class_names(tmp_path: Path) -> None:
    _image(tmp_path / "b_cat" / "1.png", (255, 0, 0))
    _image(tmp_path / "b_cat" / "2.jpg", (255, 0, 0))
    _image(tmp_path / "a_dog" / "1.PNG", (0, 0, 255), size=(20, 30))
    (tmp_path / "a_dog" / "notes.txt").write_text("ignored")
    ds = load_dataset(str(tmp_path), (3, 8, 8))
    assert ds.x.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(ds.y, [0, 1, 1])
    assert ds.num_classes == 2
    np.testing.assert_allclose(ds.x[0, 2], 1.0, atol=1e-6)  # the blue dog, resized
    np.testing.assert_allclose(ds.x[1, 0], 1.0, atol=0.02)  # a red cat (JPEG is lossy)
    grey = load_dataset(str(tmp_path), (1, 8, 8))
    assert grey.x.shape == (3, 1, 8, 8)
    np.testing.assert_allclose(grey.x[0, 0], 29 / 255, atol=1e-6)  # Pillow's luma of pure blue


def test_image_folder_errors_name_the_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset(str(tmp_path), (3, 8, 8))
    _image(tmp_path / "a" / "1.png", (0, 0, 0))
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetError, match=r"b: class folder has no PNG or JPEG images"):
        load_dataset(str(tmp_path), (3, 8, 8))
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"broken\.png: unreadable image"):
        load_dataset(str(tmp_path), (3, 8, 8))


def test_split_is_stratified_disjoint_and_deterministic(digits16: Dataset) -> None:
    splits = split_dataset(digits16, val_fraction=0.15, test_fraction=0.15, seed=3)
    sizes = (len(splits.train), len(splits.val), len(splits.test))
    assert sizes == (1257, 270, 270)
    assert splits.val.name == "digits:val"
    overall = np.bincount(digits16.y) / 1797
    for part in (splits.train, splits.val, splits.test):
        share = np.bincount(part.y, minlength=10) / len(part)
        assert np.abs(share - overall).max() < 0.01
    again = split_dataset(digits16, val_fraction=0.15, test_fraction=0.15, seed=3)
    assert np.array_equal(again.test.x, splits.test.x)
    other = split_dataset(digits16, val_fraction=0.15, test_fraction=0.15, seed=4)
    assert not np.array_equal(other.test.y, splits.test.y)


def test_split_parts_are_disjoint_and_cover_the_set() -> None:
    n = 101
    # Each image holds its own index, so the parts can be traced back to the samples.
    ds = Dataset(
        x=np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1),
        y=(np.arange(n) % 7 % 3).astype(np.int64),
        num_classes=3,
        name="indexed",
    )
    splits = split_dataset(ds, val_fraction=0.2, test_fraction=0.1, seed=1)
    parts = [part.x.ravel().astype(int) for part in (splits.train, splits.val, splits.test)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert [len(p) for p in parts] == [71, 20, 10]
    for part in (splits.train, splits.val, splits.test):
        np.testing.assert_array_equal(part.y, ds.y[part.x.ravel().astype(int)])


def test_split_of_a_tiny_set_puts_every_class_in_every_part() -> None:
    ds = Dataset(
        x=np.zeros((12, 1, 2, 2), dtype=np.float32),
        y=np.repeat(np.arange(3), 4).astype(np.int64),
        num_classes=3,
        name="tiny",
    )
    splits = split_dataset(ds, val_fraction=0.25, test_fraction=0.25)
    np.testing.assert_array_equal(np.bincount(splits.train.y), [2, 2, 2])
    np.testing.assert_array_equal(np.bincount(splits.val.y), [1, 1, 1])
    np.testing.assert_array_equal(np.bincount(splits.test.y), [1, 1, 1])


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.0, 0.2, "val_fraction must be between 0 and 1"),
        (0.2, 1.0, "test_fraction must be between 0 and 1"),
        (0.5, 0.5, "must leave samples to train on"),
        (0.01, 0.01, "too few for a non-empty"),
    ],
)
def test_split_rejects_unusable_fractions(val: float, test: float, message: str) -> None:
    ds = Dataset(
        x=np.zeros((10, 1, 2, 2), dtype=np.float32),
        y=np.arange(10, dtype=np.int64) % 2,
        num_classes=2,
        name="ten",
    )
    with pytest.raises(DatasetError, match=message):
        split_dataset(ds, val_fraction=val, test_fraction=test)
