"""Dataset references that may live in an object store."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from inferedge.dnn.data import Dataset, DatasetError, load_dataset
from inferedge.storage import open_store


def resolve_dataset(
    ref: str, input_shape: tuple[int, int, int], num_classes: int | None = None
) -> Dataset:
    """Load `ref`: `digits`, a local `.npz` or image folder, or `s3://bucket/key.npz`.

    A store object is downloaded to a temporary file (credentials from the environment, as for
    every store) and loaded like a local file.
    """
    if not ref.startswith("s3://"):
        return load_dataset(ref, input_shape, num_classes)
    bucket, _, key = ref.removeprefix("s3://").partition("/")
    if not bucket or not key.endswith(".npz"):
        raise DatasetError(f"dataset {ref!r}: an object-store dataset must be s3://bucket/key.npz")
    store = open_store(f"s3://{bucket}")
    with tempfile.TemporaryDirectory(prefix="inferedge-data-") as tmp:
        local = Path(tmp) / PurePosixPath(key).name
        store.get_file(key, local)
        dataset = load_dataset(str(local), input_shape, num_classes)
    return Dataset(x=dataset.x, y=dataset.y, num_classes=dataset.num_classes, name=Path(key).stem)
