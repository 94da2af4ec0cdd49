"""The pipeline's data: a dataset reference resolved (locally or from a store) and split."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.dnn.data import Dataset, DatasetError, Splits, load_dataset, split_dataset
from inferedge.storage import fetch_object


def resolve_dataset(
    ref: str, input_shape: tuple[int, ...], num_classes: int | None = None
) -> Dataset:
    """Load `ref`: `digits`, a local `.npz` or image folder, or `s3://bucket/key.npz`.

    A store object is downloaded to a temporary file (credentials from the environment, as for
    every store) and loaded like a local file.
    """
    if len(input_shape) != 3:
        raise DatasetError(f"datasets are images: the input shape must be C,H,W, got {input_shape}")
    shape = (input_shape[0], input_shape[1], input_shape[2])
    if not ref.startswith("s3://"):
        return load_dataset(ref, shape, num_classes)
    if not ref.endswith(".npz"):
        raise DatasetError(f"dataset {ref!r}: an object-store dataset must be s3://bucket/key.npz")
    name = PurePosixPath(ref).name
    with tempfile.TemporaryDirectory(prefix="inferedge-data-") as tmp:
        local = fetch_object(ref, Path(tmp) / name)
        dataset = load_dataset(str(local), shape, num_classes)
    return Dataset(x=dataset.x, y=dataset.y, num_classes=dataset.num_classes, name=Path(name).stem)


def pipeline_splits(spec: InferencePipelineSpec) -> Splits:
    """The spec's dataset, split into train, validation and test as `spec.dataset` says."""
    data = resolve_dataset(
        spec.dataset.uri or spec.dataset.name, spec.model.input_shape, spec.model.num_classes
    )
    dataset = spec.dataset
    return split_dataset(data, dataset.val_fraction, dataset.test_fraction, dataset.seed)
