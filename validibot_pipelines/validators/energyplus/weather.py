"""The EnergyPlus validator's side file: an uploaded EPW weather file, checked in the control plane before the
simulation is launched (:mod:`validibot_pipelines.intake.sidefiles` reads it line by line: size cap, the eight
header records, data rows with a plausible date), so garbage or a huge file is a ``failed_validation`` naming it
rather than an EnergyPlus crash or a worker out of memory.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field

from validibot_pipelines.envelopes import InputFileItem
from validibot_pipelines.intake.common import IntakeReport, MiB
from validibot_pipelines.intake.sidefiles import (
    Reject,
    SideFileCheck,
    SideFileLimits,
    quote,
    read_lines,
    scan_report,
)

WEATHER_ROLE = "weather"
#: The eight header records every EPW starts with, in order (EnergyPlus Auxiliary Programs, "Weather Format").
EPW_HEADERS = ("LOCATION", "DESIGN CONDITIONS", "TYPICAL/EXTREME PERIODS", "GROUND TEMPERATURES",
               "HOLIDAYS/DAYLIGHT SAVINGS", "COMMENTS 1", "COMMENTS 2", "DATA PERIODS")
#: Year, month, day, hour, minute, data source flags, dry bulb, dew point, relative humidity: the fields every
#: EPW data row has before the (sometimes truncated) radiation and precipitation fields.
EPW_MIN_FIELDS = 9
_EPW_DATE_RANGES = ((None, None), (1, 12), (1, 31), (1, 24), (0, 60))


class WeatherCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "WEATHER_TOO_LARGE"
    INVALID = "WEATHER_INVALID"


class WeatherLimits(SideFileLimits):
    """Caps for an uploaded weather file; :meth:`from_settings` reads the settings resource's fields."""

    #: On disk; a TMY3 year is 1.6 MiB, a year of 1-minute data about 60 MiB would be refused.
    weather_max_bytes: int = Field(default=20 * MiB, gt=0)


DEFAULT_WEATHER_LIMITS = WeatherLimits()


def check_weather(path: Path, file_name: str, limits: WeatherLimits = DEFAULT_WEATHER_LIMITS) -> IntakeReport:
    """Check an EPW weather file: the eight header records, then data rows with a plausible date and numbers."""

    def scan(fh: BinaryIO) -> dict[str, Any]:
        lines = read_lines(fh, limits.max_line_bytes, "latin-1", "weather file (.epw)")
        location = ""
        for number, expected in enumerate(EPW_HEADERS, start=1):
            line = next(lines, None)
            keyword = (line or "").split(",", 1)[0].strip().upper()
            if keyword != expected:
                found = "the file ends" if line is None else f"it starts with {quote(keyword)}"
                raise Reject(f"is not an EnergyPlus weather file: line {number} should be the {expected} header "
                              f"record but {found}; upload an .epw file (e.g. from climate.onebuilding.org or "
                              f"energyplus.net/weather)", f"line {number}")
            if number == 1:
                location = line.split(",")[1].strip() if line.count(",") else ""
        rows = 0
        for number, line in enumerate(lines, start=len(EPW_HEADERS) + 1):
            if not line.strip():
                continue
            rows += 1
            _check_epw_row(line.rstrip("\r\n").split(","), f"line {number:,}")
        if not rows:
            raise Reject("has the EPW header but no hourly data rows; upload the complete weather file")
        return {"rows": rows, "location": location[:80]}

    return scan_report(path, file_name, limits.weather_max_bytes, WeatherCode.TOO_LARGE,
                   WeatherCode.INVALID, "weather file (.epw)", scan)


def _check_epw_row(fields: list[str], where: str) -> None:
    fix = "re-download or re-export the weather file (EPW data rows are year,month,day,hour,minute,flags,values...)"
    if len(fields) < EPW_MIN_FIELDS:
        raise Reject(f"{where} has {len(fields)} fields, fewer than the {EPW_MIN_FIELDS} every EPW data row starts "
                      f"with; {fix}", where)
    for index, (low, high) in enumerate(_EPW_DATE_RANGES):
        try:
            value = int(float(fields[index]))
        except ValueError:
            value = None
        if value is None or (low is not None and not low <= value <= high):
            name = ("year", "month", "day", "hour", "minute")[index]
            raise Reject(f"{where}: {name} {quote(fields[index])} is not a valid {name}; {fix}", where)
    for index in range(6, EPW_MIN_FIELDS):
        try:
            float(fields[index])
        except ValueError:
            raise Reject(f"{where}: field {index + 1} ({quote(fields[index])}) is not a number; {fix}",
                          where) from None


def side_file_checks(limits: WeatherLimits) -> list[SideFileCheck]:
    def check(path: Path, item: InputFileItem) -> IntakeReport:
        return check_weather(path, item.name, limits)

    return [SideFileCheck(WEATHER_ROLE, limits.weather_max_bytes, WeatherCode.TOO_LARGE, "weather file (.epw)", check)]
