"""Board power in watts from the kernel's sysfs, or ``None`` with the reason.

Every probe takes the sysfs root (default ``/sys``) so tests run it against recorded trees in
``tests/data/sysfs/<platform>/``. Probes, tried in this order by :func:`detect_power_probe`:

* **Jetson, JetPack 5/6** — the mainline ``ina3221`` hwmon driver: ``class/hwmon/hwmon*/name`` is ``ina3221``,
  ``in[123]_input`` bus voltage (mV), ``curr[123]_input`` current (mA), ``in[123]_label`` the rail
  (Documentation/hwmon/ina3221.rst). Power of a rail = mV × mA / 1e6 W.
* **Jetson, older L4T** — NVIDIA's ``ina3221x`` IIO driver: ``bus/i2c/drivers/ina3221x/*/iio:device*/``
  ``in_power[012]_input`` (mW) with ``rail_name_[012]``.
* **Any hwmon power sensor** (Qualcomm PMIC/INA2xx boards and others) — ``power*_input`` in µW
  (Documentation/hwmon/sysfs-interface.rst).
* **power_supply** (Qualcomm boards, battery-fed devices) — ``voltage_now`` (µV) × ``current_now`` (µA).
* **Intel RAPL** — ``class/powercap/intel-rapl:N/energy_uj`` is a wrapping energy counter (µJ, wraps at
  ``max_energy_range_uj``): power = ΔE / Δt between two reads, so the first read has no value yet.

Total board power on a Jetson: the ``VDD_IN`` rail (module input) when present; otherwise the sum of the rails,
which on some carrier boards double-counts nested rails — the per-rail figures are published alongside.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: rails that measure the whole module's input on Jetson boards (their value is the board power)
TOTAL_RAIL_LABELS = ("VDD_IN", "VIN", "VIN_SYS_5V0", "POM_5V_IN")


@dataclass
class PowerReading:
    """One read of a probe: ``power_w`` (None with ``reason`` when unknown), per-rail watts, and the source."""

    power_w: float | None
    source: str | None
    rails_w: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def as_telemetry(self) -> dict[str, object]:
        return {"power_w": self.power_w, "power_source": self.source, "power_rails_w": self.rails_w or None,
                "power_unavailable_reason": self.reason}


def _read_number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _index(path: Path, pattern: str) -> int:
    match = re.search(pattern, path.name)
    return int(match.group(1)) if match else -1


def _total(rails_w: dict[str, float]) -> float:
    for label in TOTAL_RAIL_LABELS:
        if label in rails_w:
            return rails_w[label]
    return sum(rails_w.values())


def _reading(source: str, rails_w: dict[str, float], total: Callable[[dict[str, float]], float],
             empty_reason: str) -> PowerReading:
    if not rails_w:
        return PowerReading(None, source, reason=empty_reason)
    return PowerReading(total(rails_w), source, rails_w)


class PowerProbe:
    source = "none"

    def read(self) -> PowerReading:
        raise NotImplementedError


class JetsonHwmonProbe(PowerProbe):
    """INA3221 rails through the mainline hwmon driver (JetPack 5/6)."""

    source = "jetson_ina3221_hwmon"

    def __init__(self, hwmon_dirs: list[Path]) -> None:
        self.hwmon_dirs = hwmon_dirs

    @classmethod
    def find(cls, sysfs_root: Path) -> JetsonHwmonProbe | None:
        dirs = [d for d in sorted((sysfs_root / "class" / "hwmon").glob("hwmon*"))
                if _read_text(d / "name") == "ina3221"]
        return cls(dirs) if dirs else None

    def read(self) -> PowerReading:
        rails_w: dict[str, float] = {}
        for d in self.hwmon_dirs:
            for volt_file in sorted(d.glob("in[123]_input")):
                channel = _index(volt_file, r"in(\d)_input")
                bus_mv = _read_number(volt_file)
                current_ma = _read_number(d / f"curr{channel}_input")
                if bus_mv is None or current_ma is None:
                    continue
                label = _read_text(d / f"in{channel}_label") or f"{d.name}_ch{channel}"
                if label.upper().startswith("NC"):  # channel not connected on this board
                    continue
                rails_w[label] = bus_mv * current_ma / 1e6
        return _reading(self.source, rails_w, _total, "ina3221 hwmon present but no readable channel")


class JetsonIioProbe(PowerProbe):
    """INA3221 rails through NVIDIA's older ``ina3221x`` IIO driver (L4T 32 and earlier): power in mW."""

    source = "jetson_ina3221x_iio"

    def __init__(self, iio_dirs: list[Path]) -> None:
        self.iio_dirs = iio_dirs

    @classmethod
    def find(cls, sysfs_root: Path) -> JetsonIioProbe | None:
        dirs = sorted((sysfs_root / "bus" / "i2c" / "drivers" / "ina3221x").glob("*/iio:device*"))
        return cls(dirs) if dirs else None

    def read(self) -> PowerReading:
        rails_w: dict[str, float] = {}
        for d in self.iio_dirs:
            for power_file in sorted(d.glob("in_power[0-9]_input")):
                channel = _index(power_file, r"in_power(\d)_input")
                power_mw = _read_number(power_file)
                if power_mw is None:
                    continue
                label = _read_text(d / f"rail_name_{channel}") or f"{d.name}_ch{channel}"
                rails_w[label] = power_mw / 1e3
        return _reading(self.source, rails_w, _total, "ina3221x IIO device present but no readable rail")


class HwmonPowerProbe(PowerProbe):
    """Any hwmon device reporting ``power*_input`` in µW (sum over its channels)."""

    source = "hwmon_power"

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    @classmethod
    def find(cls, sysfs_root: Path) -> HwmonPowerProbe | None:
        files = sorted((sysfs_root / "class" / "hwmon").glob("hwmon*/power[0-9]*_input"))
        return cls(files) if files else None

    def read(self) -> PowerReading:
        rails_w: dict[str, float] = {}
        for f in self.files:
            power_uw = _read_number(f)
            if power_uw is None:
                continue
            name = _read_text(f.parent / "name") or f.parent.name
            label = _read_text(f.with_name(f.name.replace("_input", "_label"))) or f.name.split("_")[0]
            rails_w[f"{name}:{label}"] = power_uw / 1e6
        return _reading(self.source, rails_w, lambda r: sum(r.values()), "hwmon power sensors present but unreadable")


class PowerSupplyProbe(PowerProbe):
    """``class/power_supply/*`` with ``voltage_now`` (µV) and ``current_now`` (µA): P = V × |I|."""

    source = "power_supply"

    def __init__(self, supply_dirs: list[Path]) -> None:
        self.supply_dirs = supply_dirs

    @classmethod
    def find(cls, sysfs_root: Path) -> PowerSupplyProbe | None:
        dirs = [d for d in sorted((sysfs_root / "class" / "power_supply").glob("*"))
                if (d / "voltage_now").exists() and (d / "current_now").exists()]
        return cls(dirs) if dirs else None

    def read(self) -> PowerReading:
        rails_w: dict[str, float] = {}
        for d in self.supply_dirs:
            voltage_uv = _read_number(d / "voltage_now")
            current_ua = _read_number(d / "current_now")
            if voltage_uv is None or current_ua is None:
                continue
            # the sign of current_now says charging vs discharging depending on the driver; the draw is |I|
            rails_w[d.name] = voltage_uv * abs(current_ua) / 1e12
        return _reading(self.source, rails_w, lambda r: sum(r.values()),
                        "power_supply present but voltage/current unreadable")


class RaplProbe(PowerProbe):
    """Intel RAPL package energy counters: power is the energy difference over time between two reads."""

    source = "intel_rapl"

    def __init__(self, zone_dirs: list[Path], clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.zone_dirs = zone_dirs
        self.clock_ns = clock_ns
        self._last: dict[Path, tuple[float, int]] = {}

    @classmethod
    def find(cls, sysfs_root: Path, clock_ns: Callable[[], int] = time.monotonic_ns) -> RaplProbe | None:
        # top-level zones only (intel-rapl:0, :1 — one per package); sub-zones (intel-rapl:0:0 core, ...) are
        # already included in their package and would be counted twice
        dirs = [d for d in sorted((sysfs_root / "class" / "powercap").glob("intel-rapl:*"))
                if re.fullmatch(r"intel-rapl:\d+", d.name)]
        return cls(dirs, clock_ns) if dirs else None

    def read(self) -> PowerReading:
        now_ns = self.clock_ns()
        rails_w: dict[str, float] = {}
        unreadable = []
        for d in self.zone_dirs:
            energy_uj = _read_number(d / "energy_uj")
            if energy_uj is None:
                unreadable.append(d.name)
                continue
            previous = self._last.get(d)
            self._last[d] = (energy_uj, now_ns)
            if previous is None or now_ns <= previous[1]:
                continue
            delta_uj = energy_uj - previous[0]
            if delta_uj < 0:  # the counter wrapped around
                delta_uj += _read_number(d / "max_energy_range_uj") or 0.0
            label = _read_text(d / "name") or d.name
            rails_w[label] = delta_uj / 1e6 / ((now_ns - previous[1]) / 1e9)
        if unreadable and not self._last:
            return PowerReading(None, self.source, reason=f"cannot read {'/'.join(unreadable)}/energy_uj "
                                "(root-only since kernel 5.10; grant read access with a udev rule)")
        if not rails_w:
            return PowerReading(None, self.source, reason="first RAPL sample: power needs two reads")
        return PowerReading(sum(rails_w.values()), self.source, rails_w)


class NoPowerProbe(PowerProbe):
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def read(self) -> PowerReading:
        return PowerReading(None, None, reason=self.reason)


PROBE_ORDER = (JetsonHwmonProbe, JetsonIioProbe, HwmonPowerProbe, PowerSupplyProbe, RaplProbe)


def detect_power_probe(sysfs_root: str | Path = "/sys") -> PowerProbe:
    """The first probe whose sysfs files exist under ``sysfs_root``; otherwise one that says why there is none."""
    root = Path(sysfs_root)
    for probe_cls in PROBE_ORDER:
        probe = probe_cls.find(root)
        if probe is not None:
            return probe
    return NoPowerProbe(f"no power sensor under {root} (looked for INA3221 hwmon/IIO, hwmon power*_input, "
                        "power_supply voltage_now/current_now, intel-rapl energy_uj)")
