"""The FMI validator's side file: an input time series CSV (``input_timeseries:`` in the spec), checked in the
control plane before the simulation is launched (:mod:`validibot_pipelines.intake.sidefiles` reads it line by
line), so a CSV the worker's parser would choke on is a ``failed_validation`` naming the file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection
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

TIMESERIES_ROLE = "input-timeseries"


class TimeseriesCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "INPUT_TIMESERIES_TOO_LARGE"
    INVALID = "INPUT_TIMESERIES_INVALID"


class TimeseriesLimits(SideFileLimits):
    """Caps for an input time series; :meth:`from_settings` reads the settings resource's fields of these names."""

    #: On disk. 50 MiB of CSV already costs the FMU child's parser over 1 GB.
    timeseries_max_bytes: int = Field(default=50 * MiB, gt=0)
    #: Data rows (samples) and columns (time + inputs) of the CSV.
    timeseries_max_rows: int = Field(default=1_000_000, gt=0)
    timeseries_max_columns: int = Field(default=1_000, gt=1)


DEFAULT_TIMESERIES_LIMITS = TimeseriesLimits()


def check_input_timeseries(path: Path, file_name: str, limits: TimeseriesLimits = DEFAULT_TIMESERIES_LIMITS,
                           input_names: Collection[str] | None = None) -> IntakeReport:
    """Check an FMU input time series CSV: ``time,<input>,...`` header, numeric cells, non-decreasing time.

    ``input_names`` (the FMU's settable inputs, when the probe result is known) makes an unknown column an error:
    fmpy silently ignores columns that name no input, so a typo would otherwise run the model on defaults.
    """

    def scan(fh: BinaryIO) -> dict[str, Any]:
        rows = csv.reader(read_lines(fh, limits.max_line_bytes, "utf-8", "CSV file"))
        header = [name.strip() for name in next(rows, [])]
        _check_header(header, limits, input_names)
        count = 0
        previous = -math.inf
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank lines are skipped by every CSV reader
            count += 1
            where = f"line {rows.line_num:,}"
            if count > limits.timeseries_max_rows:
                raise Reject(f"has more than {limits.timeseries_max_rows:,} data rows; resample the series to fewer "
                              f"samples (the simulation interpolates between them) and upload it again")
            if len(row) != len(header):
                raise Reject(f"{where} has {len(row)} cells but the header has {len(header)} columns; give every "
                              f"row one value per column ({', '.join(header[:5])}...)", where)
            try:  # the fast path; the slow one below only runs to word the message about a bad cell
                values = list(map(float, row))
                finite = all(map(math.isfinite, values))
            except ValueError:
                finite = False
            if not finite:
                values = [_number(cell, header[i], where) for i, cell in enumerate(row)]
            if values[0] < previous:
                raise Reject(f"{where}: time {values[0]:g} is before the previous row's {previous:g}; sort the rows "
                              f"by time (equal times are allowed, for steps)", where)
            previous = values[0]
        if not count:
            raise Reject("has a header but no data rows; add at least one row of time and input values")
        return {"rows": count, "columns": header, "end_time": previous}

    return scan_report(path, file_name, limits.timeseries_max_bytes, TimeseriesCode.TOO_LARGE,
                   TimeseriesCode.INVALID, "input time series", scan)


def _check_header(header: list[str], limits: TimeseriesLimits, input_names: Collection[str] | None) -> None:
    if not header or not any(header):
        raise Reject("is empty; the first line must be a header 'time,<input name>,...' followed by rows of numbers",
                      "line 1")
    if header[0] != "time":
        raise Reject(f"header starts with {quote(header[0])}, not 'time'; the first column must be named time "
                      f"(seconds), followed by one column per FMU input", "line 1")
    if len(header) < 2:
        raise Reject("has only a time column; add one column per FMU input the series drives", "line 1")
    if len(header) > limits.timeseries_max_columns:
        raise Reject(f"has {len(header):,} columns, over the {limits.timeseries_max_columns:,} limit; keep only the "
                      f"inputs the series drives", "line 1")
    seen: set[str] = set()
    for name in header[1:]:
        if not name:
            raise Reject("header has an empty column name; name every column after an FMU input", "line 1")
        if name in seen or name == "time":
            raise Reject(f"header names column {quote(name)} twice; keep one column per input", "line 1")
        seen.add(name)
        if input_names is not None and name not in input_names:
            known = ", ".join(sorted(input_names)[:10]) or "none"
            raise Reject(f"column {quote(name)} is not an input of the FMU (its settable inputs: {known}); "
                          f"rename or drop the column", "line 1")


def _number(cell: str, column: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
        problem = "is empty" if not cell.strip() else f"({quote(cell)}) is not a number"
    else:
        problem = f"({quote(cell)}) is not a finite number"
    if not math.isfinite(value):
        raise Reject(f"{where}, column {quote(column)}: the cell {problem}; every cell below the header must be "
                      f"a number (0/1 for Boolean inputs)", where)
    return value


def side_file_checks(limits: TimeseriesLimits, input_names: Collection[str] | None = None) -> list[SideFileCheck]:
    """The simulation's side-file check (``input_names``: the FMU's settable inputs, from its probe)."""

    def check(path: Path, item: InputFileItem) -> IntakeReport:
        return check_input_timeseries(path, item.name, limits, input_names)

    return [SideFileCheck(TIMESERIES_ROLE, limits.timeseries_max_bytes, TimeseriesCode.TOO_LARGE,
                          "input time series", check)]
