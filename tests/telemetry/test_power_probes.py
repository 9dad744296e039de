"""Power and thermal probes against sysfs trees laid out as each platform's kernel exposes them (tests/data/sysfs).

Expected values are computed here from the files' documented units, so a unit mistake in a probe fails.
"""

import shutil
from pathlib import Path

import pytest

from ims_runtime.telemetry.power import (
    HwmonPowerProbe,
    JetsonHwmonProbe,
    JetsonIioProbe,
    NoPowerProbe,
    PowerSupplyProbe,
    RaplProbe,
    detect_power_probe,
)
from ims_runtime.telemetry.thermal import thermal_zones_c

SYSFS = Path(__file__).resolve().parents[1] / "data" / "sysfs"


def test_jetson_jetpack6_ina3221_hwmon_reports_vdd_in_as_the_board_power():
    probe = detect_power_probe(SYSFS / "jetson-orin-jp6")
    assert isinstance(probe, JetsonHwmonProbe)
    reading = probe.read()
    # in*_input is mV, curr*_input is mA: 5072 mV × 1184 mA = 6.005 W
    assert reading.power_w == pytest.approx(5.072 * 1.184)
    assert reading.rails_w == pytest.approx({"VDD_IN": 5.072 * 1.184, "VDD_CPU_GPU_CV": 5.064 * 0.392,
                                             "VDD_SOC": 5.064 * 0.552})
    assert reading.source == "jetson_ina3221_hwmon" and reading.reason is None


def test_jetson_l4t32_ina3221x_iio_reads_milliwatts():
    probe = detect_power_probe(SYSFS / "jetson-nano-l4t32")
    assert isinstance(probe, JetsonIioProbe)
    reading = probe.read()
    assert reading.power_w == pytest.approx(3.176)  # POM_5V_IN, in mW
    assert set(reading.rails_w) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}


def test_qualcomm_power_supply_multiplies_microvolts_by_absolute_microamps():
    probe = detect_power_probe(SYSFS / "qualcomm-power-supply")
    assert isinstance(probe, PowerSupplyProbe)
    reading = probe.read()
    assert reading.power_w == pytest.approx(3.852 * 0.412)  # discharging: current_now is negative
    assert list(reading.rails_w) == ["battery"]  # usb has no voltage_now/current_now


def test_hwmon_power_input_is_microwatts():
    probe = detect_power_probe(SYSFS / "qualcomm-hwmon")
    assert isinstance(probe, HwmonPowerProbe)
    assert probe.read().power_w == pytest.approx(1.375)


def test_rapl_power_is_the_energy_difference_over_time_and_survives_wrap_around(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(SYSFS / "intel-rapl", root)
    now_ns = [0]
    probe = detect_power_probe(root)
    assert isinstance(probe, RaplProbe)
    probe.clock_ns = lambda: now_ns[0]
    energy = root / "class" / "powercap" / "intel-rapl:0" / "energy_uj"
    first = probe.read()
    assert first.power_w is None and "two reads" in first.reason
    start_uj = int(energy.read_text())
    energy.write_text(str(start_uj + 3_000_000))  # 3 J in 2 s
    now_ns[0] = 2_000_000_000
    reading = probe.read()
    assert reading.power_w == pytest.approx(1.5)
    assert list(reading.rails_w) == ["package-0"]  # the core sub-zone is inside the package: not added
    max_uj = int((energy.parent / "max_energy_range_uj").read_text())
    energy.write_text("500000")  # wrapped: (max - last) + 0.5 J over 1 s
    now_ns[0] = 3_000_000_000
    wrapped = probe.read()
    assert wrapped.power_w == pytest.approx((max_uj - (start_uj + 3_000_000) + 500_000) / 1e6)


def test_no_sensor_gives_null_power_with_a_reason():
    probe = detect_power_probe(SYSFS / "no-sensors")
    assert isinstance(probe, NoPowerProbe)
    reading = probe.read().as_telemetry()
    assert reading["power_w"] is None and reading["power_source"] is None
    assert "no power sensor" in reading["power_unavailable_reason"]


def test_unreadable_channel_is_skipped_not_reported_as_zero(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(SYSFS / "jetson-orin-jp6", root)
    (root / "class/hwmon/hwmon1/curr1_input").unlink()  # VDD_IN unreadable → sum of the remaining rails
    reading = detect_power_probe(root).read()
    assert "VDD_IN" not in reading.rails_w
    assert reading.power_w == pytest.approx(5.064 * 0.392 + 5.064 * 0.552)


def test_thermal_zones_are_millidegrees_and_skip_unreadable_zones():
    zones = thermal_zones_c(SYSFS / "jetson-orin-jp6")
    assert zones["cpu-thermal"] == pytest.approx(47.531) and len(zones) == 9
    assert thermal_zones_c(SYSFS / "intel-rapl") == {"x86_pkg_temp": 52.0}  # acpitz reads empty
    assert thermal_zones_c(SYSFS / "no-sensors") is None
