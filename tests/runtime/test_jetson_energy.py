"""The energy sensor detection (inferedge.dnn.energy) against the Nano, Xavier NX and Orin NX
trees of sysfs_trees: the module's input rail is found by glob, through the driver's symlinks,
whatever the hwmon number or the i2c address."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferedge.dnn.energy import PowerSensor, detect_energy_sensor
from tests.runtime import sysfs_trees as trees
from tests.runtime.sysfs_trees import BOARDS

# Written out rather than taken from sysfs_trees: the driver and the rail each board reports.
EXPECTED = {
    "nano": "ina3221x:POM_5V_IN",
    "xavier_nx": "ina3221:VDD_IN",
    "orin": "ina3221:VDD_IN",
}


def detect(root: Path) -> PowerSensor:
    sensor = detect_energy_sensor(root)
    assert isinstance(sensor, PowerSensor)
    return sensor


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_each_board_is_measured_on_its_input_rail(tmp_path: Path, board: str) -> None:
    BOARDS[board](tmp_path)
    assert detect(tmp_path).name == EXPECTED[board]


@pytest.mark.parametrize(
    ("hwmon", "i2c_client"),
    [
        (0, "platform/c250000.i2c/i2c-7/7-0040"),
        (3, "platform/bus@0/c240000.i2c/i2c-1/1-0040"),  # JetPack 6's place
        (12, "platform/c240000.i2c/i2c-1/1-0041"),
    ],
)
@pytest.mark.parametrize("board", ["xavier_nx", "orin"])
def test_the_hwmon_rail_is_found_whatever_its_number_and_address(
    tmp_path: Path, board: str, hwmon: int, i2c_client: str
) -> None:
    build = trees.xavier_nx if board == "xavier_nx" else trees.orin
    build(tmp_path, hwmon=hwmon, i2c_client=i2c_client)
    assert detect(tmp_path).name == "ina3221:VDD_IN"


@pytest.mark.parametrize("i2c_client", ["7000c400.i2c/i2c-6/6-0040", "c250000.i2c/i2c-7/7-0040"])
def test_the_iio_rail_is_found_whatever_its_address(tmp_path: Path, i2c_client: str) -> None:
    trees.nano(tmp_path, i2c_client=i2c_client)
    assert detect(tmp_path).name == "ina3221x:POM_5V_IN"


# The readings of each board's input rail, below its i2c client: power alone for iio (mW),
# voltage and current for hwmon.
INPUT_RAIL_FILES = {
    "nano": ("iio:device0/in_power0_input",),
    "xavier_nx": ("hwmon/hwmon6/in1_input", "hwmon/hwmon6/curr1_input"),
    "orin": ("hwmon/hwmon4/in1_input", "hwmon/hwmon4/curr1_input"),
}


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_only_the_input_rails_files_are_read(tmp_path: Path, board: str) -> None:
    """With every other reading deleted the sensor still works; without any one of the input
    rail's it fails: the input rail alone is measured, through its own files."""
    BOARDS[board](tmp_path)
    sensor = detect(tmp_path)
    (client,) = (tmp_path / "sys/bus/i2c/drivers").glob("*/*-004*")
    needed = [client / name for name in INPUT_RAIL_FILES[board]]
    others = [path for path in client.glob("**/*_input") if path not in needed]
    assert len(others) >= 5  # the other rails' readings exist, and go
    for path in others:
        path.unlink()
    sensor.start()
    assert sensor.stop() >= 0.0

    for path in needed:
        reading = path.read_text()
        path.unlink()
        with pytest.raises(FileNotFoundError):
            sensor.start()
        path.write_text(reading)
