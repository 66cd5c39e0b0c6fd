"""Read what an EnergyPlus run produced: summary metrics and time series from ``eplusout.sql``, counts and
messages from ``eplusout.err``, and the engine / IDD versions.

Why the SQLite output and not the HTML/CSV tables: ``eplusout.sql`` holds every tabular report and every output
variable in one file with stable table, row and column names, so one :mod:`sqlite3` query replaces fragile table
scraping. Why no pandas: this runs in the worker, whose start-up time is part of every validation; pyarrow is
already needed for the Parquet artifact.

Names used (checked against EnergyPlus 25.2 output, ``ReportForString = 'Entire Facility'``):

* ``AnnualBuildingUtilityPerformanceSummary`` / ``End Uses``: rows ``Heating``, ``Cooling``, ``Interior Lighting``,
  ``Fans``, ``Pumps``, ``Total End Uses``; columns ``Electricity``, ``Natural Gas``, ``District Cooling``,
  ``District Heating Water``, ``District Heating Steam`` (older releases: ``District Heating``), other fuels and
  ``Water`` (a volume, never summed into energy).
* ``AnnualBuildingUtilityPerformanceSummary`` / ``Building Area``: row ``Net Conditioned Building Area``,
  column ``Area``.
* ``AnnualBuildingUtilityPerformanceSummary`` / ``Comfort and Setpoint Not Met Summary``: rows
  ``Time Setpoint Not Met During Occupied Heating`` / ``... Cooling``, column ``Facility`` (hours).
* ``DemandEndUseComponentsSummary`` / ``End Uses``: row ``Total End Uses``, column ``Electricity`` (W).

Values are converted by the ``Units`` column, not assumed: the default table units are GJ / m2 / W, but a model's
``OutputControl:Table:Style`` may switch them to kWh or to IP units (kBtu, ft2, Btu/h).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from validibot_pipelines.validators.energyplus.worker import install

ABUPS = "AnnualBuildingUtilityPerformanceSummary"
DEMAND = "DemandEndUseComponentsSummary"
FACILITY = "Entire Facility"
END_USES = "End Uses"
BUILDING_AREA = "Building Area"
UNMET = "Comfort and Setpoint Not Met Summary"
TOTAL_ROW = "Total End Uses"

KWH_PER_UNIT: dict[str, float] = {
    "J": 1 / 3.6e6,
    "kJ": 1 / 3.6e3,
    "MJ": 1 / 3.6,
    "GJ": 1e3 / 3.6,  # 277.777...
    "Wh": 1e-3,
    "kWh": 1.0,
    "MWh": 1e3,
    "GWh": 1e6,
    "Btu": 2.9307107e-4,
    "kBtu": 0.29307107,
    "MBtu": 293.07107,
    "MMBtu": 293.07107,
    "therm": 29.307107,
}
"""Energy units EnergyPlus may write in its tables, as kWh. A column in any other unit (``m3`` water) is not energy."""

M2_PER_UNIT: dict[str, float] = {"m2": 1.0, "ft2": 0.09290304}
W_PER_UNIT: dict[str, float] = {"W": 1.0, "kW": 1e3, "MW": 1e6, "Btu/h": 0.29307107, "kBtu/h": 293.07107}
HOURS_PER_UNIT: dict[str, float] = {"Hours": 1.0, "hr": 1.0, "h": 1.0}

END_USE_ROWS: dict[str, str] = {
    "heating_kwh": "Heating",
    "cooling_kwh": "Cooling",
    "interior_lighting_kwh": "Interior Lighting",
    "fans_kwh": "Fans",
    "pumps_kwh": "Pumps",
}
"""Metric → ``End Uses`` row; each is summed over every energy column (all fuels), in kWh."""

METRIC_NAMES: tuple[str, ...] = (
    "site_electricity_kwh",
    "site_natural_gas_kwh",
    "site_district_heating_kwh",
    "site_district_cooling_kwh",
    "site_total_energy_kwh",
    *END_USE_ROWS,
    "simulated_conditioned_area_m2",
    "site_eui_kwh_m2",
    "unmet_heating_hours",
    "unmet_cooling_hours",
    "peak_electric_demand_w",
)
"""Every key :func:`read_metrics` returns, always all of them, so assertions can test ``!= null`` uniformly."""

MAX_MESSAGES = 10
MAX_MESSAGE_CHARS = 500

# Finest first: when a variable is reported at several frequencies the finest one wins (see read_timeseries).
FREQUENCY_ORDER: tuple[str, ...] = (
    "HVAC System Timestep",
    "Zone Timestep",
    "Hourly",
    "Daily",
    "Monthly",
    "Run Period",
    "Annual",
)
WEATHER_RUN_PERIOD = 3  # EnvironmentPeriods.EnvironmentType: 1 design day, 2 design run period, 3 weather file
FALLBACK_YEAR = 2000  # leap year, so every month/day EnergyPlus can report builds a valid date
_EPOCH = datetime(1970, 1, 1)

TIMESERIES_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("s")),
        pa.field("key", pa.string()),
        pa.field("variable", pa.string()),
        pa.field("units", pa.string()),
        pa.field("value", pa.float64()),
    ]
)
"""Tidy long format: one row per (timestamp, key, variable). ``timestamp`` is the END of the reporting interval on
the simulation clock (local standard time, naive), EnergyPlus' own convention; null for Run Period / Annual
values. ``key`` is the output key (zone, surface, ``Environment``; empty for meters)."""

_Cells = dict[tuple[str, str], list[tuple[str, str, str, str]]]


# ---------------------------------------------------------------------------------------------------------------
# Summary metrics
# ---------------------------------------------------------------------------------------------------------------


def read_metrics(sql_path: Path) -> dict[str, float | None]:
    """Headline metrics of one run, every key of :data:`METRIC_NAMES` present, ``None`` where not available.

    Never raises for a missing, truncated or table-less database: a model that fails half-way still deserves a
    report of what it did produce, and the verdict comes from the return code and ``eplusout.err``, not from here.
    What becomes ``None``:

    * everything, if the file is missing or unreadable or was written without tabular data
      (``Output:SQLite,Simple``);
    * all but ``peak_electric_demand_w``, if ``AnnualBuildingUtilityPerformanceSummary`` was not requested;
    * ``peak_electric_demand_w``, if ``DemandEndUseComponentsSummary`` was not requested;
    * ``site_eui_kwh_m2``, if the net conditioned area is missing or zero (nothing conditioned);
    * any single value whose row, column or unit is absent or not a number.
    """
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    cells = _read_cells(sql_path)
    if not cells:
        return metrics

    end_uses = cells.get((ABUPS, END_USES), [])
    if end_uses:
        metrics["site_electricity_kwh"] = _cell(end_uses, TOTAL_ROW, "Electricity".__eq__, KWH_PER_UNIT)
        metrics["site_natural_gas_kwh"] = _cell(end_uses, TOTAL_ROW, "Natural Gas".__eq__, KWH_PER_UNIT)
        metrics["site_district_cooling_kwh"] = _cell(end_uses, TOTAL_ROW, "District Cooling".__eq__, KWH_PER_UNIT)
        # 22.2+ splits district heating into "District Heating Water" and "... Steam"; older releases had one.
        metrics["site_district_heating_kwh"] = _cell(
            end_uses, TOTAL_ROW, lambda col: col.startswith("District Heating"), KWH_PER_UNIT
        )
        metrics["site_total_energy_kwh"] = _cell(end_uses, TOTAL_ROW, lambda _col: True, KWH_PER_UNIT)
        for metric, row in END_USE_ROWS.items():
            metrics[metric] = _cell(end_uses, row, lambda _col: True, KWH_PER_UNIT)

    area = _cell(cells.get((ABUPS, BUILDING_AREA), []), "Net Conditioned Building Area", "Area".__eq__, M2_PER_UNIT)
    metrics["simulated_conditioned_area_m2"] = area
    total = metrics["site_total_energy_kwh"]
    if total is not None and area:
        metrics["site_eui_kwh_m2"] = total / area

    unmet = cells.get((ABUPS, UNMET), [])
    for kind in ("heating", "cooling"):
        row = f"Time Setpoint Not Met During Occupied {kind.title()}"
        metrics[f"unmet_{kind}_hours"] = _cell(unmet, row, "Facility".__eq__, HOURS_PER_UNIT)

    demand = cells.get((DEMAND, END_USES), [])
    metrics["peak_electric_demand_w"] = _cell(demand, TOTAL_ROW, "Electricity".__eq__, W_PER_UNIT)
    return metrics


def _connect(sql_path: Path) -> sqlite3.Connection:
    """Open read-only: a plain ``connect`` would silently create an empty database where the run wrote none.

    Callers wrap it in :func:`contextlib.closing`; a connection's own context manager only commits.
    """
    return sqlite3.connect(f"{Path(sql_path).resolve().as_uri()}?mode=ro", uri=True)


def _read_cells(sql_path: Path) -> _Cells:
    """(report, table) → [(row, column, units, value)] for the facility-level tables the metrics need."""
    wanted = [(ABUPS, END_USES), (ABUPS, BUILDING_AREA), (ABUPS, UNMET), (DEMAND, END_USES)]
    query = (
        "SELECT ReportName, TableName, RowName, ColumnName, Units, Value FROM TabularDataWithStrings "
        "WHERE ReportForString = ? AND ReportName IN (?, ?) AND TableName IN (?, ?, ?)"
    )
    cells: _Cells = {}
    try:
        with closing(_connect(sql_path)) as conn:
            rows = conn.execute(query, (FACILITY, ABUPS, DEMAND, END_USES, BUILDING_AREA, UNMET)).fetchall()
    except sqlite3.Error:  # missing file, truncated by a killed run, or no tabular view
        return cells
    for report, table, row, column, units, value in rows:
        if (report, table) in wanted:
            cells.setdefault((report, table), []).append((row or "", column or "", units or "", value or ""))
    return cells


def _cell(
    cells: Iterable[tuple[str, str, str, str]],
    row: str,
    column_matches: Callable[[str], bool],
    factors: dict[str, float],
) -> float | None:
    """Sum of the numeric cells of ``row`` in matching columns whose units are in ``factors``, converted.

    ``None`` when no such cell exists or none is a number, so "not reported" never reads as a real zero.
    """
    total: float | None = None
    for row_name, column, units, value in cells:
        if row_name != row or not column_matches(column) or units not in factors:
            continue
        number = _number(value)
        if number is not None:
            total = (total or 0.0) + number * factors[units]
    return total


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:  # "-", "" or a time-of-peak string
        return None


# ---------------------------------------------------------------------------------------------------------------
# eplusout.err
# ---------------------------------------------------------------------------------------------------------------

_SUMMARY = re.compile(
    r"EnergyPlus (?P<outcome>Completed Successfully|Terminated--Fatal Error Detected)[-.\s]*"
    r"(?P<warnings>\d+) Warning; (?P<severes>\d+) Severe Errors"
)
_MESSAGE = re.compile(r"^\s*\*\*\s*(?P<level>Warning|Severe|Fatal)\s*\*\*\s?(?P<text>.*)$")
_CONTINUATION = re.compile(r"^\s*\*\*\s+~~~\s+\*\*\s?(?P<text>.*)$")


def parse_err(text: str) -> dict[str, Any]:
    """Counts and the first messages of an ``eplusout.err``.

    Returns ``warning_count``, ``severe_count``, ``fatal_count``, ``completed_successfully`` and
    ``fatal_messages`` / ``severe_messages`` (the first :data:`MAX_MESSAGES` of each, continuation lines joined,
    so the user sees *why* without downloading the file).

    The counts come from EnergyPlus' own final summary line (``EnergyPlus Completed Successfully-- N Warning; M
    Severe Errors`` or ``EnergyPlus Terminated--Fatal Error Detected. N Warning; M Severe Errors``) because it also
    counts recurring messages that are printed once. Without that line (the process was killed, crashed or timed
    out) they fall back to counting ``** Warning **`` / ``** Severe  **`` lines. The summary has no fatal count,
    so fatal errors are always counted from ``**  Fatal  **`` lines (at least one if EnergyPlus says it
    terminated on one).
    """
    counted = {"Warning": 0, "Severe": 0, "Fatal": 0}
    messages: dict[str, list[str]] = {"Severe": [], "Fatal": []}
    last: list[str] | None = None  # the message list the previous line went to, for continuations
    for line in text.splitlines():
        if match := _CONTINUATION.match(line):
            _extend_last(last, match["text"])
            continue
        match = _MESSAGE.match(line)
        if not match:
            continue
        level, body = match["level"], match["text"].strip()
        counted[level] += 1
        if body.startswith("~~~"):  # the input parser writes continuations as "** Severe  ** ~~~ ..."
            _extend_last(last, body.removeprefix("~~~").strip())
            continue
        last = messages.get(level)
        if last is not None and len(last) < MAX_MESSAGES:
            last.append(body[:MAX_MESSAGE_CHARS])
        else:
            last = None

    summaries = list(_SUMMARY.finditer(text))
    summary = summaries[-1] if summaries else None  # the last one is the run's final verdict
    completed = summary is not None and summary["outcome"] == "Completed Successfully"
    warnings = int(summary["warnings"]) if summary else counted["Warning"]
    severes = int(summary["severes"]) if summary else counted["Severe"]
    fatals = counted["Fatal"]
    if summary is not None and not completed:
        fatals = max(fatals, 1)
    return {
        "warning_count": warnings,
        "severe_count": severes,
        "fatal_count": fatals,
        "completed_successfully": completed,
        "fatal_messages": messages["Fatal"],
        "severe_messages": messages["Severe"],
    }


def _extend_last(last: list[str] | None, text: str) -> None:
    if last and text.strip():
        last[-1] = f"{last[-1]} {text.strip()}"[:MAX_MESSAGE_CHARS]


# ---------------------------------------------------------------------------------------------------------------
# Time series
# ---------------------------------------------------------------------------------------------------------------


def read_timeseries(sql_path: Path, variables: list[str], frequency: str | None = None) -> pa.Table:
    """Requested output variables (or meters) as a tidy :data:`TIMESERIES_SCHEMA` table.

    Names match case-insensitively, as in an IDF, and the ``variable`` column carries the caller's spelling, so
    the caller can tell exactly which of its requests produced no rows. All keys (zones, surfaces...) of a
    variable are returned. One frequency per variable keeps (timestamp, key, variable) unique: ``frequency``
    (e.g. ``"Hourly"``) if given, otherwise the finest one reported, since a model may already report a variable
    at its own frequency besides the one the pipeline adds. Warm-up days are dropped, and so are design days
    whenever the run has weather-file run periods (``Run Simulation for Sizing Periods`` would otherwise mix
    design-day values into the annual series). A missing or unreadable database gives an empty table.
    """
    if not variables:
        return _empty_timeseries()
    try:
        with closing(_connect(sql_path)) as conn:
            return _timeseries(conn, variables, frequency)
    except sqlite3.Error:
        return _empty_timeseries()


def _timeseries(conn: sqlite3.Connection, variables: list[str], frequency: str | None) -> pa.Table:
    requested = {name.lower(): name for name in reversed(variables)}  # first spelling wins
    series = _pick_series(conn, requested, frequency)
    if not series:
        return _empty_timeseries()

    env_filter = ""
    if conn.execute(
        "SELECT 1 FROM EnvironmentPeriods WHERE EnvironmentType = ? LIMIT 1", (WEATHER_RUN_PERIOD,)
    ).fetchone():
        env_filter = (
            " AND t.EnvironmentPeriodIndex IN (SELECT EnvironmentPeriodIndex FROM EnvironmentPeriods "
            f"WHERE EnvironmentType = {WEATHER_RUN_PERIOD})"
        )
    marks = ",".join("?" * len(series))
    cursor = conn.execute(
        "SELECT r.ReportDataDictionaryIndex, r.TimeIndex, r.Value FROM ReportData r "
        "JOIN Time t ON t.TimeIndex = r.TimeIndex "
        f"WHERE r.ReportDataDictionaryIndex IN ({marks}) AND r.Value IS NOT NULL "
        "AND (t.WarmupFlag IS NULL OR t.WarmupFlag = 0)"
        f"{env_filter}",
        list(series),
    )
    rows = np.fromiter(cursor, dtype=[("series", np.int64), ("time", np.int64), ("value", np.float64)])
    if not len(rows):
        return _empty_timeseries()

    time_keys = np.unique(rows["time"])
    seconds, valid = _timestamps(conn, time_keys)
    time_pos = np.searchsorted(time_keys, rows["time"])
    series_keys = np.array(sorted(series), dtype=np.int64)
    series_pos = _numeric(np.searchsorted(series_keys, rows["series"]).astype(np.int64), pa.int64())
    labels = [series[int(k)] for k in series_keys]
    table = pa.Table.from_arrays(
        [
            _numeric(seconds[time_pos], pa.timestamp("s"), valid[time_pos]),
            _strings([label[0] for label in labels]).take(series_pos),
            _strings([label[1] for label in labels]).take(series_pos),
            _strings([label[2] for label in labels]).take(series_pos),
            _numeric(rows["value"], pa.float64()),
        ],
        schema=TIMESERIES_SCHEMA,
    )
    return table.sort_by([("variable", "ascending"), ("key", "ascending"), ("timestamp", "ascending")])


def _empty_timeseries() -> pa.Table:
    """``TIMESERIES_SCHEMA.empty_table()`` without it: that, too, goes through ``pa.array`` and imports pandas."""
    no_rows = np.zeros(0, dtype=np.int64)
    return pa.Table.from_arrays(
        [_numeric(no_rows, pa.timestamp("s")), _strings([]), _strings([]), _strings([]),
         _numeric(no_rows.astype(np.float64), pa.float64())],
        schema=TIMESERIES_SCHEMA,
    )


def _numeric(values: np.ndarray, type_: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """Wrap a numpy buffer as an Arrow array without ``pa.array``, which imports pandas (~0.3 s of worker
    start-up) just to check whether its argument is a pandas object."""
    values = np.ascontiguousarray(values)
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap, nulls = pa.py_buffer(np.packbits(valid, bitorder="little")), int((~valid).sum())
    return pa.Array.from_buffers(type_, len(values), [bitmap, pa.py_buffer(values)], null_count=nulls)


def _strings(values: list[str]) -> pa.Array:
    """UTF-8 string array from Python strings, built from buffers for the same reason as :func:`_numeric`."""
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], null_count=0
    )


def _pick_series(
    conn: sqlite3.Connection, requested: dict[str, str], frequency: str | None
) -> dict[int, tuple[str, str, str]]:
    """ReportDataDictionaryIndex → (key, requested variable name, units), one frequency per variable."""
    marks = ",".join("?" * len(requested))
    entries = conn.execute(
        "SELECT ReportDataDictionaryIndex, KeyValue, Name, Units, ReportingFrequency FROM ReportDataDictionary "
        f"WHERE lower(Name) IN ({marks})",
        list(requested),
    ).fetchall()
    rank = {name.lower(): i for i, name in enumerate(FREQUENCY_ORDER)}
    chosen: dict[str, str] = {}  # lower-case variable → frequency to keep
    for _index, _key, name, _units, freq in entries:
        lname, lfreq = name.lower(), (freq or "").lower()
        if frequency is not None:
            if lfreq == frequency.lower():
                chosen[lname] = lfreq
        elif lname not in chosen or rank.get(lfreq, len(rank)) < rank.get(chosen[lname], len(rank)):
            chosen[lname] = lfreq
    return {
        index: (key or "", requested[name.lower()], units or "")
        for index, key, name, units, freq in entries
        if chosen.get(name.lower()) == (freq or "").lower()
    }


def _timestamps(conn: sqlite3.Connection, time_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval end of each TimeIndex in ``time_ids``, as seconds since 1970 (naive, simulation clock), and
    whether it has one.

    EnergyPlus writes the end as (Hour, Minute) with Hour 1..24, so Hour 24 of a day is midnight of the next;
    Run Period / Annual rows have no date and come back invalid (null).
    """
    seconds = np.zeros(len(time_ids), dtype=np.int64)
    valid = np.zeros(len(time_ids), dtype=bool)
    position = {int(index): i for i, index in enumerate(time_ids)}
    ids = list(position)
    for start in range(0, len(ids), 900):  # stay below SQLite's bound-parameter limit
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT TimeIndex, Year, Month, Day, Hour, Minute FROM Time WHERE TimeIndex IN ({marks})"
        for index, year, month, day, hour, minute in conn.execute(query, chunk):
            if not month or not day:
                continue
            end = datetime(year or FALLBACK_YEAR, month, day) + timedelta(hours=hour or 0, minutes=minute or 0)
            seconds[position[index]] = (end - _EPOCH) // timedelta(seconds=1)
            valid[position[index]] = True
    return seconds, valid


# ---------------------------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------------------------


def energyplus_version() -> str:
    """Three-part engine version (``25.2.0``) of the installed EnergyPlus, from its package metadata: no process
    start needed, and it is the version the model's ``Version`` object is compared with."""
    return install.engine_version()


@cache
def idd_version() -> str:
    """``!IDD_Version`` of the ``Energy+.idd`` the engine reads (``25.2.0``).

    Reported separately from the engine version because the IDD is what actually decides whether an input
    file's objects are understood. Raises if the IDD is missing or has no version line: that is a broken
    installation (the system's fault), not something to paper over.
    """
    idd = install.payload_dir() / "Energy+.idd"
    with idd.open(encoding="latin-1") as handle:
        for _, line in zip(range(20), handle, strict=False):
            if line.startswith("!IDD_Version"):
                return line.split(maxsplit=1)[1].strip()
    raise ValueError(f"{idd} has no '!IDD_Version' line in its header")
