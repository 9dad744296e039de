"""Thermal zones from sysfs: ``class/thermal/thermal_zone*/type`` and ``temp`` (millidegrees Celsius).

Takes the sysfs root so tests read recorded trees. Zones whose reading fails (some report EINVAL while the
sensor is off) are left out; ``None`` when there is no readable zone at all.
"""

from __future__ import annotations

from pathlib import Path


def thermal_zones_c(sysfs_root: str | Path = "/sys") -> dict[str, float] | None:
    """``{zone type: °C}``; duplicate types get the zone name appended (``cpu-thermal``, ``cpu-thermal#2``)."""
    out: dict[str, float] = {}
    for zone in sorted(Path(sysfs_root, "class", "thermal").glob("thermal_zone*"),
                       key=lambda p: int(p.name.removeprefix("thermal_zone") or 0)):
        try:
            kind = (zone / "type").read_text().strip() or zone.name
            temp_mc = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        name = kind if kind not in out else f"{kind}#{zone.name.removeprefix('thermal_zone')}"
        out[name] = temp_mc / 1000.0
    return out or None
