"""Tensor layout at the boundary: inferedge speaks C x H x W, Keras computes H x W x C.

Every shape inferedge records (a manifest's `inputShape`, cut points, exported files) and every
array that crosses the wire is channels-first, as in the torch backend and in `dnn.data`. Keras
layers are channels-last (TensorFlow's CPU kernels support nothing else), so inside this package
an image map is H x W x C and the conversion happens only where a tensor enters or leaves it.
A per-sample shape of rank 3 is an image map; vectors and other ranks are the same either way.
"""

from __future__ import annotations

import numpy as np

Shape = tuple[int, ...]

_IMAGE_RANK = 3
# keras.layers.Permute axes (batch excluded, 1-based): channels-first <-> channels-last.
TO_CHANNELS_LAST = (2, 3, 1)
TO_CHANNELS_FIRST = (3, 1, 2)


def is_image(shape: Shape) -> bool:
    """Whether a per-sample shape is an image map (and so changes layout at the boundary)."""
    return len(shape) == _IMAGE_RANK


def to_internal(shape: Shape) -> Shape:
    """A boundary (C, H, W) shape as Keras' (H, W, C); other ranks unchanged."""
    if not is_image(shape):
        return tuple(shape)
    c, h, w = shape
    return (h, w, c)


def to_boundary(shape: Shape) -> Shape:
    """A Keras (H, W, C) shape as the boundary's (C, H, W); other ranks unchanged."""
    if not is_image(shape):
        return tuple(shape)
    h, w, c = shape
    return (c, h, w)


def batch_to_internal(x: np.ndarray) -> np.ndarray:
    """An N x C x H x W batch as a contiguous N x H x W x C one; other ranks unchanged."""
    if x.ndim != _IMAGE_RANK + 1:
        return x
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def batch_to_boundary(x: np.ndarray) -> np.ndarray:
    """An N x H x W x C batch as a contiguous N x C x H x W one; other ranks unchanged."""
    if x.ndim != _IMAGE_RANK + 1:
        return x
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def describe(shape: Shape) -> str:
    """`3x16x16`, for messages."""
    return "x".join(str(d) for d in shape)
