"""The TensorFlow/Keras 3 backend: the same interfaces as `inferedge.dnn.torch`, for Keras models.

Importing this package selects Keras' TensorFlow backend and quiets TensorFlow's start-up log
lines (both only where the user has not chosen otherwise), so the CLI's output stays readable.
Nothing outside this package imports TensorFlow.
"""

from __future__ import annotations

import os

# Keras reads these once, when it is first imported, so they are set before any module of this
# package imports it. A user's own choice in the environment wins.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Imported after the environment above is set: Keras reads it on import.
import keras

if keras.backend.backend() != "tensorflow":
    # An ImportError, so `get_backend` and `get_workflow` report it as a missing backend.
    raise ImportError(
        f"Keras is configured for the {keras.backend.backend()!r} backend; inferedge's Keras "
        "backend needs KERAS_BACKEND=tensorflow"
    )
