"""Labelled image data for training and calibrating exits: loading, validation and splitting.

Framework-neutral (numpy and Pillow only). A dataset reference is one of:

- `digits`: scikit-learn's bundled handwritten digits (1,797 8x8 grey images, 10 classes), the
  one real data set available without a download. Images are scaled to [0, 1], resized
  bilinearly, replicated to the model's channels and standardised with fixed constants.
- a `.npz` file with arrays `x` (N x C x H x W or N x H x W x C, uint8 or floating point) and `y`
  (N integer labels).
- a folder with one sub-folder per class (labels follow the sorted folder names) of PNG or JPEG
  images.

For files and folders the rule is the same: uint8 pixels are scaled to [0, 1], floating-point
arrays are used as given (already preprocessed); images whose height or width differ from the
model's input are resized bilinearly; the channel count must be the model's, or 1 (grey, then
replicated). Every problem is a one-line `DatasetError` naming the file and the field.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inferedge.core.errors import InferedgeError
from inferedge.core.resources import FLOAT_BYTES, shortfall
from inferedge.dnn.host import available_memory

DIGITS = "digits"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})

# Mean and standard deviation of the digits pixels scaled to [0, 1], measured once on all 1,797
# images; fixed so every split and every later inference standardises identically.
_DIGITS_MEAN = 0.30526
_DIGITS_STD = 0.37605
_DIGITS_MAX_PIXEL = 16.0
_UINT8_MAX = 255.0


class DatasetError(InferedgeError):
    """A dataset reference cannot be loaded, or its contents are malformed."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled images: `x` float32 N x C x H x W, `y` int64 labels in 0..num_classes-1."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.float32:
            raise ValueError(
                f"x must be a float32 N x C x H x W array, got {self.x.dtype} {self.x.shape}"
            )
        if self.y.shape != (len(self.x),) or self.y.dtype != np.int64:
            raise ValueError(
                f"y must be int64 with one label per image, got {self.y.dtype} {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample shape (C, H, W)."""
        _, c, h, w = self.x.shape
        return (c, h, w)

    def subset(self, indices: np.ndarray, name: str) -> Dataset:
        """The samples at `indices`, in that order, under a new name."""
        return Dataset(
            x=self.x[indices], y=self.y[indices], num_classes=self.num_classes, name=name
        )


@dataclass(frozen=True)
class Splits:
    """Disjoint train / validation / test parts of one dataset."""

    train: Dataset
    val: Dataset
    test: Dataset

    def named(self) -> tuple[tuple[str, Dataset], ...]:
        """Each part under its name: `train`, `val`, `test`."""
        return (("train", self.train), ("val", self.val), ("test", self.test))


def load_dataset(
    ref: str, input_shape: tuple[int, int, int], num_classes: int | None = None
) -> Dataset:
    """Load the dataset named by `ref` as images of `input_shape` (C, H, W).

    `num_classes` bounds the labels (0..num_classes-1); when None it is the number of class
    folders, or the largest label plus one. Raises `DatasetError` with a one-line message.
    """
    _check_request(input_shape, num_classes)
    if ref == DIGITS:
        x, y = _digits(input_shape)
        source = DIGITS
    elif ref.endswith(".npz"):
        x, y = _npz(Path(ref), input_shape)
        source = ref
    elif Path(ref).is_dir():
        x, y, folders = _image_folder(Path(ref), input_shape)
        source = ref
        if num_classes is None:
            num_classes = folders
    else:
        raise DatasetError(
            f"dataset {ref!r}: expected {DIGITS!r}, a .npz file or a folder of class folders"
        )
    if len(y) == 0:
        raise DatasetError(f"{source}: the dataset is empty")
    if num_classes is None:
        num_classes = int(y.max()) + 1
    if y.min() < 0 or y.max() >= num_classes:
        raise DatasetError(
            f"{source}: y: labels must be in 0..{num_classes - 1}, "
            f"found {int(y.min())}..{int(y.max())}"
        )
    name = DIGITS if ref == DIGITS else Path(ref).stem
    return Dataset(x=x, y=y, num_classes=num_classes, name=name)


def split_dataset(
    ds: Dataset, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Splits:
    """Split `ds` into train, validation and test parts, stratified by class.

    The same seed gives the same split. Each class's samples are shuffled and spread evenly over
    one ordering of the whole set, so the test part (taken first), the validation part (next)
    and the rest keep the class proportions even when there are few samples.
    """
    for field, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise DatasetError(f"{ds.name}: {field} must be between 0 and 1, got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"{ds.name}: val_fraction + test_fraction must leave samples to train on, "
            f"got {val_fraction} + {test_fraction}"
        )
    rng = np.random.default_rng(seed)
    position = np.empty(len(ds), dtype=np.float64)
    for label in np.unique(ds.y):
        members = rng.permutation(np.flatnonzero(ds.y == label))
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    # Ties (classes of equal size) are broken by label, which the stable sort keeps.
    order = np.lexsort((ds.y, position))
    n_test = round(len(ds) * test_fraction)
    n_val = round(len(ds) * val_fraction)
    parts = {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }
    for part, indices in parts.items():
        if len(indices) == 0:
            raise DatasetError(
                f"{ds.name}: {len(ds)} samples are too few for a non-empty {part} split"
            )
    return Splits(
        **{part: ds.subset(indices, f"{ds.name}:{part}") for part, indices in parts.items()}
    )


def _check_request(input_shape: tuple[int, int, int], num_classes: int | None) -> None:
    if len(input_shape) != 3 or any(isinstance(d, bool) or d < 1 for d in input_shape):
        raise DatasetError(f"input_shape must be (channels, height, width), got {input_shape}")
    if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
        raise DatasetError(f"num_classes must be >= 1, got {num_classes}")


def _digits(input_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # scikit-learn is slow to import; only digits needs it

    bunch = load_digits()
    grey = (bunch.images / _DIGITS_MAX_PIXEL).astype(np.float32)[:, None]
    x = _fit(grey, input_shape)
    x = (x - np.float32(_DIGITS_MEAN)) / np.float32(_DIGITS_STD)
    return x, bunch.target.astype(np.int64)


def _npz(path: Path, input_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing array {missing[0]!r} (found: {', '.join(archive.files)})"
                )
            x = archive["x"]
            y = archive["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{path}: y: expected a 1-D array of integer labels, got {y.dtype} of shape {y.shape}"
        )
    if x.ndim != 4:
        raise DatasetError(
            f"{path}: x: expected N x C x H x W or N x H x W x C, got shape {x.shape}"
        )
    if len(x) != len(y):
        raise DatasetError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    channels = input_shape[0]
    if x.shape[1] in (channels, 1):
        nchw = x
    elif x.shape[3] in (channels, 1):
        nchw = x.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(
            f"{path}: x: shape {x.shape} has neither {channels} nor 1 channels in position 1 "
            "(N x C x H x W) or 3 (N x H x W x C)"
        )
    if x.dtype == np.uint8:
        scaled = nchw.astype(np.float32) / np.float32(_UINT8_MAX)
    elif np.issubdtype(x.dtype, np.floating):
        scaled = nchw.astype(np.float32)
        if not np.isfinite(scaled).all():
            raise DatasetError(f"{path}: x: contains NaN or infinite values")
    else:
        raise DatasetError(f"{path}: x: expected uint8 or floating-point pixels, got {x.dtype}")
    return _fit(scaled, input_shape), y.astype(np.int64)


def _image_folder(
    root: Path, input_shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class folders (expected one sub-folder per class)")
    mode = "RGB" if input_shape[0] == 3 else "L"
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, folder in enumerate(classes):
        files = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DatasetError(f"{folder}: class folder has no PNG or JPEG images")
        for file in files:
            images.append(_read_image(file, mode, input_shape))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), len(classes)


def _read_image(file: Path, mode: str, input_shape: tuple[int, int, int]) -> np.ndarray:
    try:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert(mode), dtype=np.float32) / np.float32(_UINT8_MAX)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"{file}: unreadable image ({exc})") from None
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    fitted: np.ndarray = _fit(chw[None], input_shape)[0]
    return fitted


def _fit(x: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """float32 N x C' x H' x W' images (C' the model's channels or 1) as N x C x H x W."""
    channels, height, width = input_shape
    refusal = shortfall(
        len(x) * channels * height * width * FLOAT_BYTES,
        available_memory(),
        f"a dataset of {len(x)} images at input shape {list(input_shape)}",
    )
    if refusal is not None:
        raise DatasetError(refusal)
    if x.shape[2:] != (height, width):
        x = np.stack([[_resize(plane, height, width) for plane in image] for image in x]).astype(
            np.float32
        )
    if x.shape[1] != channels:
        x = np.repeat(x, channels, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    # Pillow's bilinear filter widens its support when shrinking, so downscaling does not alias.
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
