"""Control-plane checks for the side files that ride along with a model: FMU input time series and EPW weather.

Why: a side file is as untrusted as the model, but the worker parses it with tools that load the whole file
(the FMU child's ``numpy.genfromtxt`` spent 5.2 GB on a 200 MB CSV; EnergyPlus reads the whole EPW). So before a
worker is launched, each side file is capped by size (from the recorded size, before a byte is downloaded) and
its shape is checked while reading it *line by line* with a bounded line length, so memory stays constant
whatever the upload holds. Parsing uses the standard ``csv`` module; only the line splitting is our own, because
``csv`` itself would happily read a 50 MB "line" into memory.

Every problem becomes a finding (the model's fault, ``failed_validation``) that names the file, the problem
and the fix, in a few hundred characters at most; the first problem found stops the check (one clear message
beats thousands). Like the rest of :mod:`validibot_pipelines.intake`, this never imports ``dagster`` and never
runs native code from the upload.
"""

from __future__ import annotations

import codecs
import csv
import math
import tempfile
from collections.abc import Collection, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.envelopes import InputFileItem, ValidationMessage
from validibot_pipelines.intake.common import (
    Findings,
    IntakeError,
    IntakeReport,
    MiB,
    decode_text,
    format_bytes,
    regular_file_size,
    size_cap_finding,
)

#: Roles (``InputFileItem.role``) whose files are checked here; others pass through unchanged.
TIMESERIES_ROLE = "input-timeseries"
WEATHER_ROLE = "weather"
#: The eight header records every EPW starts with, in order (EnergyPlus Auxiliary Programs, "Weather Format").
EPW_HEADERS = ("LOCATION", "DESIGN CONDITIONS", "TYPICAL/EXTREME PERIODS", "GROUND TEMPERATURES",
               "HOLIDAYS/DAYLIGHT SAVINGS", "COMMENTS 1", "COMMENTS 2", "DATA PERIODS")
#: Year, month, day, hour, minute, data source flags, dry bulb, dew point, relative humidity: the fields every
#: EPW data row has before the (sometimes truncated) radiation and precipitation fields.
EPW_MIN_FIELDS = 9
_EPW_DATE_RANGES = ((None, None), (1, 12), (1, 31), (1, 24), (0, 60))
_QUOTE_CHARS = 40
#: Bytes read (and split into lines) at a time: small, so the lines of one block cost little memory.
READ_BYTES = 64 * 1024  # how much of a bad cell or name a message quotes


class SideFileCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TIMESERIES_TOO_LARGE = "INPUT_TIMESERIES_TOO_LARGE"
    TIMESERIES_INVALID = "INPUT_TIMESERIES_INVALID"
    WEATHER_TOO_LARGE = "WEATHER_TOO_LARGE"
    WEATHER_INVALID = "WEATHER_INVALID"


class SideFileLimits(BaseModel):
    """Caps for side files; :meth:`from_settings` reads a deployment's ``ValidibotSettings`` (``# side files``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: An input time series CSV on disk. 50 MiB of CSV already costs the FMU child's parser over 1 GB.
    timeseries_max_bytes: int = Field(default=50 * MiB, gt=0)
    #: Data rows (samples) and columns (time + inputs) of the CSV.
    timeseries_max_rows: int = Field(default=1_000_000, gt=0)
    timeseries_max_columns: int = Field(default=1_000, gt=1)
    #: An EPW weather file on disk; a TMY3 year is 1.6 MiB, a year of 1-minute data about 60 MiB would be refused.
    weather_max_bytes: int = Field(default=20 * MiB, gt=0)
    #: One line of a side file; longer means garbage (or a file with no line breaks) and is never read whole.
    max_line_bytes: int = Field(default=1 * MiB, gt=0)

    @classmethod
    def from_settings(cls, settings: Any) -> SideFileLimits:
        """The limits a settings object carries (attributes named like the fields), defaults for the rest."""
        values = {name: getattr(settings, name) for name in cls.model_fields if getattr(settings, name, None)}
        return cls(**values)


DEFAULT_SIDE_FILE_LIMITS = SideFileLimits()


class _Reject(Exception):
    """The first problem in a side file: stops the scan and becomes one finding."""

    def __init__(self, text: str, location: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.location = location


def _quote(value: str) -> str:
    value = value.strip()
    return repr(value if len(value) <= _QUOTE_CHARS else value[: _QUOTE_CHARS - 3] + "...")


def _lines(fh: BinaryIO, max_line_bytes: int, encoding: str, kind: str) -> Iterator[str]:
    """Decoded lines of ``fh`` (without line ends), read in 64 KiB blocks so memory stays constant.

    Hand-split rather than ``for line in fh`` because a file iterator reads a line of any length into memory;
    here a line longer than ``max_line_bytes`` is refused as soon as it is seen. Every block is also checked
    for binary content (a NUL, a run of control characters, UTF-16), not only the start of the file.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig" if encoding == "utf-8" else encoding)()
    pending, line = "", 1
    while block := fh.read(READ_BYTES):
        if line == 1 and block.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _Reject(f"is UTF-16 encoded text, which the tools cannot read; re-save the {kind} as UTF-8 (in "
                          f"Excel: 'CSV UTF-8')", "line 1")
        if b"\x00" in block:
            at = line + block.count(b"\n", 0, block.index(b"\x00"))
            raise _Reject(f"contains a NUL byte on line {at:,}, so it is a binary file, not a {kind}; upload the "
                          f"{kind} itself, saved as plain text", f"line {at}")
        binary = decode_text(block).problem
        if binary:
            raise _Reject(f"{binary} (around line {line:,}); upload the {kind} itself, saved as plain text",
                          f"line {line}")
        try:
            parts = (pending + decoder.decode(block)).split("\n")
        except UnicodeDecodeError:
            raise _Reject(f"is not valid UTF-8 (around line {line:,}); re-save the {kind} as UTF-8 text",
                          f"line {line}") from None
        pending = parts.pop()
        for part in parts:
            if len(part) > max_line_bytes:
                pending = part
                break
            yield part
            line += 1
        if len(pending) > max_line_bytes:
            raise _Reject(f"line {line:,} is longer than {format_bytes(max_line_bytes)}, so this is not a {kind} "
                          f"(or it has no line breaks); upload the {kind} as plain text with one record per line",
                          f"line {line}")
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _Reject(f"ends in the middle of a UTF-8 character (line {line:,}); re-save the {kind} as UTF-8 text",
                      f"line {line}") from None
    if pending:
        yield pending


def _report(path: Path, file_name: str, max_bytes: int, too_large: str, invalid: str, kind: str,
            scan: Any) -> IntakeReport:
    """Size cap from ``stat`` first (nothing is read when over it), then ``scan(fh)`` -> facts, or a rejection."""
    findings = Findings(file_name)
    size = regular_file_size(path)
    if size_cap_finding(findings, too_large, size, max_bytes, kind):
        return IntakeReport.build(file_name, size, findings.items())
    facts: dict[str, Any] = {}
    try:
        with open(path, "rb") as fh:
            facts = scan(fh)
    except _Reject as problem:
        findings.error(invalid, problem.text, location=problem.location)
    except csv.Error as exc:  # e.g. a field over csv's own field size limit, or a bad quote
        findings.error(invalid, f"is not a readable CSV ({str(exc)[:120]}); export the data again as plain CSV")
    except OSError as exc:
        raise IntakeError(f"cannot read staged file {path}: {exc.strerror or exc}") from exc
    return IntakeReport.build(file_name, size, findings.items(), facts)


def check_input_timeseries(path: Path, file_name: str, limits: SideFileLimits = DEFAULT_SIDE_FILE_LIMITS,
                           input_names: Collection[str] | None = None) -> IntakeReport:
    """Check an FMU input time series CSV: ``time,<input>,...`` header, numeric cells, non-decreasing time.

    ``input_names`` (the FMU's settable inputs, when the probe result is known) makes an unknown column an error:
    fmpy silently ignores columns that name no input, so a typo would otherwise run the model on defaults.
    """

    def scan(fh: BinaryIO) -> dict[str, Any]:
        rows = csv.reader(_lines(fh, limits.max_line_bytes, "utf-8", "CSV file"))
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
                raise _Reject(f"has more than {limits.timeseries_max_rows:,} data rows; resample the series to fewer "
                              f"samples (the simulation interpolates between them) and upload it again")
            if len(row) != len(header):
                raise _Reject(f"{where} has {len(row)} cells but the header has {len(header)} columns; give every "
                              f"row one value per column ({', '.join(header[:5])}...)", where)
            try:  # the fast path; the slow one below only runs to word the message about a bad cell
                values = list(map(float, row))
                finite = all(map(math.isfinite, values))
            except ValueError:
                finite = False
            if not finite:
                values = [_number(cell, header[i], where) for i, cell in enumerate(row)]
            if values[0] < previous:
                raise _Reject(f"{where}: time {values[0]:g} is before the previous row's {previous:g}; sort the rows "
                              f"by time (equal times are allowed, for steps)", where)
            previous = values[0]
        if not count:
            raise _Reject("has a header but no data rows; add at least one row of time and input values")
        return {"rows": count, "columns": header, "end_time": previous}

    return _report(path, file_name, limits.timeseries_max_bytes, SideFileCode.TIMESERIES_TOO_LARGE,
                   SideFileCode.TIMESERIES_INVALID, "input time series", scan)


def _check_header(header: list[str], limits: SideFileLimits, input_names: Collection[str] | None) -> None:
    if not header or not any(header):
        raise _Reject("is empty; the first line must be a header 'time,<input name>,...' followed by rows of numbers",
                      "line 1")
    if header[0] != "time":
        raise _Reject(f"header starts with {_quote(header[0])}, not 'time'; the first column must be named time "
                      f"(seconds), followed by one column per FMU input", "line 1")
    if len(header) < 2:
        raise _Reject("has only a time column; add one column per FMU input the series drives", "line 1")
    if len(header) > limits.timeseries_max_columns:
        raise _Reject(f"has {len(header):,} columns, over the {limits.timeseries_max_columns:,} limit; keep only the "
                      f"inputs the series drives", "line 1")
    seen: set[str] = set()
    for name in header[1:]:
        if not name:
            raise _Reject("header has an empty column name; name every column after an FMU input", "line 1")
        if name in seen or name == "time":
            raise _Reject(f"header names column {_quote(name)} twice; keep one column per input", "line 1")
        seen.add(name)
        if input_names is not None and name not in input_names:
            known = ", ".join(sorted(input_names)[:10]) or "none"
            raise _Reject(f"column {_quote(name)} is not an input of the FMU (its settable inputs: {known}); "
                          f"rename or drop the column", "line 1")


def _number(cell: str, column: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
        problem = "is empty" if not cell.strip() else f"({_quote(cell)}) is not a number"
    else:
        problem = f"({_quote(cell)}) is not a finite number"
    if not math.isfinite(value):
        raise _Reject(f"{where}, column {_quote(column)}: the cell {problem}; every cell below the header must be "
                      f"a number (0/1 for Boolean inputs)", where)
    return value


def check_weather(path: Path, file_name: str, limits: SideFileLimits = DEFAULT_SIDE_FILE_LIMITS) -> IntakeReport:
    """Check an EPW weather file: the eight header records, then data rows with a plausible date and numbers."""

    def scan(fh: BinaryIO) -> dict[str, Any]:
        lines = _lines(fh, limits.max_line_bytes, "latin-1", "weather file (.epw)")
        location = ""
        for number, expected in enumerate(EPW_HEADERS, start=1):
            line = next(lines, None)
            keyword = (line or "").split(",", 1)[0].strip().upper()
            if keyword != expected:
                found = "the file ends" if line is None else f"it starts with {_quote(keyword)}"
                raise _Reject(f"is not an EnergyPlus weather file: line {number} should be the {expected} header "
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
            raise _Reject("has the EPW header but no hourly data rows; upload the complete weather file")
        return {"rows": rows, "location": location[:80]}

    return _report(path, file_name, limits.weather_max_bytes, SideFileCode.WEATHER_TOO_LARGE,
                   SideFileCode.WEATHER_INVALID, "weather file (.epw)", scan)


def _check_epw_row(fields: list[str], where: str) -> None:
    fix = "re-download or re-export the weather file (EPW data rows are year,month,day,hour,minute,flags,values...)"
    if len(fields) < EPW_MIN_FIELDS:
        raise _Reject(f"{where} has {len(fields)} fields, fewer than the {EPW_MIN_FIELDS} every EPW data row starts "
                      f"with; {fix}", where)
    for index, (low, high) in enumerate(_EPW_DATE_RANGES):
        try:
            value = int(float(fields[index]))
        except ValueError:
            value = None
        if value is None or (low is not None and not low <= value <= high):
            name = ("year", "month", "day", "hour", "minute")[index]
            raise _Reject(f"{where}: {name} {_quote(fields[index])} is not a valid {name}; {fix}", where)
    for index in range(6, EPW_MIN_FIELDS):
        try:
            float(fields[index])
        except ValueError:
            raise _Reject(f"{where}: field {index + 1} ({_quote(fields[index])}) is not a number; {fix}",
                          where) from None


def check_side_file(path: Path, item: InputFileItem, limits: SideFileLimits = DEFAULT_SIDE_FILE_LIMITS,
                    input_names: Collection[str] | None = None) -> IntakeReport | None:
    """The check for a staged side file by its role, or ``None`` when no check applies to the role."""
    if item.role == TIMESERIES_ROLE:
        return check_input_timeseries(path, item.name, limits, input_names)
    if item.role == WEATHER_ROLE:
        return check_weather(path, item.name, limits)
    return None


def _cap_for(item: InputFileItem, limits: SideFileLimits) -> tuple[int, str, str] | None:
    if item.role == TIMESERIES_ROLE:
        return limits.timeseries_max_bytes, SideFileCode.TIMESERIES_TOO_LARGE, "input time series"
    if item.role == WEATHER_ROLE:
        return limits.weather_max_bytes, SideFileCode.WEATHER_TOO_LARGE, "weather file (.epw)"
    return None


def check_stored_side_files(items: list[InputFileItem], limits: SideFileLimits = DEFAULT_SIDE_FILE_LIMITS,
                            input_names: Collection[str] | None = None,
                            model_name: str = "") -> list[ValidationMessage]:
    """Findings (ERRORs) for the stored side files of a model, empty when they are all fine.

    The recorded size is compared with the cap before anything is downloaded, so an oversize file costs nothing;
    the others are downloaded to a temporary folder (a local file when the store is ``file://``) and streamed.
    ``model_name`` is added to each message so the user knows which model the side file was meant for.
    """
    from validibot_pipelines.storage import get_store

    messages: list[ValidationMessage] = []
    for item in items:
        cap = _cap_for(item, limits)
        if cap is None:
            continue
        if item.size_bytes > cap[0]:
            findings = Findings(item.name)
            size_cap_finding(findings, cap[1], item.size_bytes, cap[0], cap[2])
            report = IntakeReport.build(item.name, item.size_bytes, findings.items())
        else:
            with tempfile.TemporaryDirectory(prefix="validibot-sidefile-") as tmp:
                local = Path(tmp) / item.name
                get_store(item.uri).download_file(item.uri, local)
                report = check_side_file(local, item, limits, input_names)
        for finding in report.errors if report else []:
            text = f"{finding.text} (side file of {model_name})" if model_name else finding.text
            messages.append(finding.model_copy(update={"text": text}))
    return messages
