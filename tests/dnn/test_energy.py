"""Energy sensors against fake sysfs trees: RAPL counters (with wrap), Jetson INA3221 rails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from inferedge.dnn.energy import CounterSensor, PowerSensor, detect_energy_sensor

RAPL = "sys/class/powercap"
HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
IIO = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
MAX_UJ = 262_143_328_850


def write(root: Path, files: dict[str, object]) -> None:
    for relative, value in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")


def rapl_domain(name: str, energy_uj: int) -> dict[str, object]:
    return {"name": name, "energy_uj": energy_uj, "max_energy_range_uj": MAX_UJ}


def add_rapl(root: Path, domain: str, name: str, energy_uj: int) -> None:
    write(root, {f"{RAPL}/{domain}/{key}": v for key, v in rapl_domain(name, energy_uj).items()})


def measure_mj(sensor: PowerSensor, seconds: float) -> tuple[float, float]:
    """Energy over about `seconds`, and the wall time that surely covers the measurement."""
    began = time.perf_counter()
    sensor.start()
    time.sleep(seconds)
    energy = sensor.stop()
    return energy, time.perf_counter() - began


def test_no_sensor_on_an_empty_root(tmp_path: Path) -> None:
    assert detect_energy_sensor(tmp_path) is None


def test_rapl_sums_packages_and_survives_a_wrap(tmp_path: Path) -> None:
    add_rapl(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 1_000)
    add_rapl(tmp_path, "intel-rapl:1", "package-1", 5_000)
    # Inside package 0 (a subdomain) and the whole platform: both would double count.
    add_rapl(tmp_path, "intel-rapl:0:0", "core", 0)
    add_rapl(tmp_path, "intel-rapl:2", "psys", 0)
    sensor = detect_energy_sensor(tmp_path)
    assert isinstance(sensor, CounterSensor)
    assert sensor.name == "intel-rapl:package-0+package-1"

    sensor.start()
    write(
        tmp_path, {f"{RAPL}/intel-rapl:0/energy_uj": 500, f"{RAPL}/intel-rapl:1/energy_uj": 7_000}
    )
    write(
        tmp_path,
        {f"{RAPL}/intel-rapl:0:0/energy_uj": 10**9, f"{RAPL}/intel-rapl:2/energy_uj": 10**9},
    )
    # Package 0 wrapped: 1000 uJ to the top and 500 after; package 1 counted 2000 uJ.
    assert sensor.stop() == pytest.approx((1_500 + 2_000) / 1000)


def test_unreadable_rapl_is_no_sensor(tmp_path: Path) -> None:
    add_rapl(tmp_path, "intel-rapl:0", "package-0", 0)
    # Stands in for a root-only file: any OSError on reading it (tests may run as root).
    (tmp_path / RAPL / "intel-rapl:0/energy_uj").unlink()
    (tmp_path / RAPL / "intel-rapl:0/energy_uj").mkdir()
    assert detect_energy_sensor(tmp_path) is None


def test_hwmon_prefers_the_total_input_rail(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            f"{HWMON}/in1_label": "VDD_IN",
            f"{HWMON}/in1_input": 5_000,  # mV
            f"{HWMON}/curr1_input": 1_000,  # mA: 5 W in total
            f"{HWMON}/in2_label": "VDD_CPU_GPU_CV",
            f"{HWMON}/in2_input": 5_000,
            f"{HWMON}/curr2_input": 400,
            # Unlabelled: a shunt voltage and the sum of currents, never a rail.
            f"{HWMON}/in4_input": 20,
            f"{HWMON}/curr4_input": 1_400,
        },
    )
    sensor = detect_energy_sensor(tmp_path)
    assert isinstance(sensor, PowerSensor)
    assert sensor.name == "ina3221:VDD_IN"
    energy, elapsed = measure_mj(sensor, 0.05)
    assert 5_000 * 0.05 <= energy <= 5_000 * elapsed


def test_hwmon_sums_rails_without_a_total_and_skips_disabled(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            f"{HWMON}/in1_label": "CPU",
            f"{HWMON}/in1_input": 1_000,
            f"{HWMON}/curr1_input": 1_000,  # 1 W
            f"{HWMON}/in2_label": "GPU",
            f"{HWMON}/in2_input": 2_000,
            f"{HWMON}/curr2_input": 1_000,  # 2 W
            f"{HWMON}/in3_label": "SOC",
            f"{HWMON}/in3_enable": 0,
            f"{HWMON}/in3_input": 9_000,
            f"{HWMON}/curr3_input": 9_000,
        },
    )
    sensor = detect_energy_sensor(tmp_path)
    assert isinstance(sensor, PowerSensor)
    assert sensor.name == "ina3221:CPU+GPU"
    energy, elapsed = measure_mj(sensor, 0.05)
    assert 3_000 * 0.05 <= energy <= 3_000 * elapsed


def test_jetpack4_iio_rails(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            f"{IIO}/rail_name_0": "POM_5V_IN",
            f"{IIO}/in_power0_input": 4_000,  # mW
            f"{IIO}/rail_name_1": "POM_5V_GPU",
            f"{IIO}/in_power1_input": 1_000,
        },
    )
    sensor = detect_energy_sensor(tmp_path)
    assert isinstance(sensor, PowerSensor)
    assert sensor.name == "ina3221x:POM_5V_IN"
    energy, elapsed = measure_mj(sensor, 0.05)
    assert 4_000 * 0.05 <= energy <= 4_000 * elapsed


def test_power_changes_are_integrated(tmp_path: Path) -> None:
    write(tmp_path, {f"{IIO}/rail_name_0": "VDD_IN", f"{IIO}/in_power0_input": 1_000})
    sensor = detect_energy_sensor(tmp_path)
    assert isinstance(sensor, PowerSensor)
    began = time.perf_counter()
    sensor.start()
    time.sleep(0.05)
    write(tmp_path, {f"{IIO}/in_power0_input": 3_000})
    time.sleep(0.05)
    energy = sensor.stop()
    elapsed = time.perf_counter() - began
    # At least 1 W throughout plus 2 W more for the last 50 ms, of which the trapezoid between
    # the last 1 W and the first 3 W sample may halve up to all (if sampling lags by 50 ms).
    assert 1_000 * 0.1 + 2_000 * 0.025 <= energy <= 3_000 * elapsed


def test_jetson_sensor_wins_over_rapl(tmp_path: Path) -> None:
    add_rapl(tmp_path, "intel-rapl:0", "package-0", 0)
    write(tmp_path, {f"{IIO}/rail_name_0": "VDD_IN", f"{IIO}/in_power0_input": 1_000})
    sensor = detect_energy_sensor(tmp_path)
    assert sensor is not None
    assert sensor.name == "ina3221x:VDD_IN"


def test_a_rail_that_vanishes_fails_the_measurement(tmp_path: Path) -> None:
    write(tmp_path, {f"{IIO}/rail_name_0": "VDD_IN", f"{IIO}/in_power0_input": 1_000})
    sensor = detect_energy_sensor(tmp_path)
    assert sensor is not None
    sensor.start()
    (tmp_path / IIO / "in_power0_input").unlink()
    time.sleep(0.02)
    with pytest.raises(FileNotFoundError):
        sensor.stop()
