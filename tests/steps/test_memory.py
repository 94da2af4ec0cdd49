"""Steps refuse what cannot fit before they build anything: one line, exit code 2."""

from __future__ import annotations

import pytest

from inferedge.core.errors import InferedgeError
from inferedge.dnn.data import DatasetError, load_dataset
from inferedge.dnn.host import available_memory
from inferedge.steps.memory import require
from tests.clitools import RunCli, assert_one_line_error

MIB = 2**20


def test_an_emulated_device_narrows_what_the_host_offers() -> None:
    assert available_memory(64 * MIB) == 64 * MIB
    assert available_memory() > 64 * MIB
    require(64 * MIB, "a small step", 64 * MIB)
    with pytest.raises(InferedgeError, match=r"^a big step needs about 0\.1 GiB, more than the "):
        require(128 * MIB, "a big step", 64 * MIB)


def test_a_dataset_too_large_for_this_host_is_refused_before_it_is_resized() -> None:
    # 1,797 digits at 16k x 16k would need terabytes: refused before any image is resized.
    with pytest.raises(DatasetError, match=r"^a dataset of 1797 images at input shape ") as err:
        load_dataset("digits", (3, 16384, 16384))
    assert "\n" not in str(err.value)


def test_profiling_an_input_too_large_for_this_host_is_a_one_line_error(run_cli: RunCli) -> None:
    result = run_cli("profile", "small_resnet", "--input-shape", "3,16384,16384", "-o", "x.json")
    assert_one_line_error(result, "--input-shape 3,16384,16384 at batch 1 needs about")
