"""Reading the side files that ride along with a model (time series, weather, …) without trusting them.

Why: a side file is as untrusted as the model, but the worker parses it with tools that load the whole file
(the FMU child's ``numpy.genfromtxt`` spent 5.2 GB on a 200 MB CSV; EnergyPlus reads the whole EPW). So before a
worker is launched, each side file is capped by size (from the recorded size, before a byte is downloaded) and
its shape is checked while reading it *line by line* with a bounded line length, so memory stays constant
whatever the upload holds. Parsing uses the standard ``csv`` module; only the line splitting is our own, because
``csv`` itself would happily read a 50 MB "line" into memory.

This module is the shared machinery; each validator declares the side files it reads (role, cap, check) as
:class:`SideFileCheck` s in its own folder (e.g. ``validators/fmi/timeseries.py``). Every problem becomes a finding
(the model's fault, ``failed_validation``) that names the file, the problem and the fix, in a few hundred
characters at most; the first problem found stops the check (one clear message beats thousands). Like the rest of
:mod:`validibot_pipelines.intake`, this never imports ``dagster`` and never runs native code from the upload.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

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

#: One line of a side file; longer means garbage (or a file with no line breaks) and is never read whole.
MAX_LINE_BYTES = 1 * MiB
_QUOTE_CHARS = 40
#: Bytes read (and split into lines) at a time: small, so the lines of one block cost little memory.
READ_BYTES = 64 * 1024


class Reject(Exception):
    """The first problem in a side file: stops the scan and becomes one finding."""

    def __init__(self, text: str, location: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.location = location


def quote(value: str) -> str:
    value = value.strip()
    return repr(value if len(value) <= _QUOTE_CHARS else value[: _QUOTE_CHARS - 3] + "...")


def read_lines(fh: BinaryIO, max_line_bytes: int, encoding: str, kind: str) -> Iterator[str]:
    """Decoded lines of ``fh`` (without line ends), read in 64 KiB blocks so memory stays constant.

    Hand-split rather than ``for line in fh`` because a file iterator reads a line of any length into memory;
    here a line longer than ``max_line_bytes`` is refused as soon as it is seen. Every block is also checked
    for binary content (a NUL, a run of control characters, UTF-16), not only the start of the file.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig" if encoding == "utf-8" else encoding)()
    pending, line = "", 1
    while block := fh.read(READ_BYTES):
        if line == 1 and block.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise Reject(f"is UTF-16 encoded text, which the tools cannot read; re-save the {kind} as UTF-8 (in "
                          f"Excel: 'CSV UTF-8')", "line 1")
        if b"\x00" in block:
            at = line + block.count(b"\n", 0, block.index(b"\x00"))
            raise Reject(f"contains a NUL byte on line {at:,}, so it is a binary file, not a {kind}; upload the "
                          f"{kind} itself, saved as plain text", f"line {at}")
        binary = decode_text(block).problem
        if binary:
            raise Reject(f"{binary} (around line {line:,}); upload the {kind} itself, saved as plain text",
                          f"line {line}")
        try:
            parts = (pending + decoder.decode(block)).split("\n")
        except UnicodeDecodeError:
            raise Reject(f"is not valid UTF-8 (around line {line:,}); re-save the {kind} as UTF-8 text",
                          f"line {line}") from None
        pending = parts.pop()
        for part in parts:
            if len(part) > max_line_bytes:
                pending = part
                break
            yield part
            line += 1
        if len(pending) > max_line_bytes:
            raise Reject(f"line {line:,} is longer than {format_bytes(max_line_bytes)}, so this is not a {kind} "
                          f"(or it has no line breaks); upload the {kind} as plain text with one record per line",
                          f"line {line}")
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise Reject(f"ends in the middle of a UTF-8 character (line {line:,}); re-save the {kind} as UTF-8 text",
                      f"line {line}") from None
    if pending:
        yield pending


def scan_report(path: Path, file_name: str, max_bytes: int, too_large: str, invalid: str, kind: str,
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
    except Reject as problem:
        findings.error(invalid, problem.text, location=problem.location)
    except csv.Error as exc:  # e.g. a field over csv's own field size limit, or a bad quote
        findings.error(invalid, f"is not a readable CSV ({str(exc)[:120]}); export the data again as plain CSV")
    except OSError as exc:
        raise IntakeError(f"cannot read staged file {path}: {exc.strerror or exc}") from exc
    return IntakeReport.build(file_name, size, findings.items(), facts)


class SideFileLimits(BaseModel):
    """Base of a validator's side-file caps: :meth:`from_settings` reads the settings resource's fields of the same
    names (each validator declares them in its ``settings.py``), defaults for the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_line_bytes: int = Field(default=MAX_LINE_BYTES, gt=0)

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        values = {name: getattr(settings, name) for name in cls.model_fields if getattr(settings, name, None)}
        return cls(**values)


@dataclass(frozen=True)
class SideFileCheck:
    """How a validator checks one role of side file: its size cap (checked before download), and the scan."""

    role: str
    max_bytes: int
    too_large_code: str
    kind: str  # how messages name it, e.g. "input time series"
    check: Callable[[Path, InputFileItem], IntakeReport]


def check_stored_side_files(items: list[InputFileItem], checks: Sequence[SideFileCheck],
                            model_name: str = "") -> list[ValidationMessage]:
    """Findings (ERRORs) for the stored side files of a model, empty when they are all fine.

    The recorded size is compared with the cap before anything is downloaded, so an oversize file costs nothing;
    the others are downloaded to a temporary folder (a local file when the store is ``file://``) and streamed.
    ``model_name`` is added to each message so the user knows which model the side file was meant for. Items of
    a role no check names pass through unchanged.
    """
    from validibot_pipelines.storage import get_store

    by_role = {check.role: check for check in checks}
    messages: list[ValidationMessage] = []
    for item in items:
        check = by_role.get(item.role)
        if check is None:
            continue
        if item.size_bytes > check.max_bytes:
            findings = Findings(item.name)
            size_cap_finding(findings, check.too_large_code, item.size_bytes, check.max_bytes, check.kind)
            report = IntakeReport.build(item.name, item.size_bytes, findings.items())
        else:
            with tempfile.TemporaryDirectory(prefix="validibot-sidefile-") as tmp:
                local = Path(tmp) / item.name
                get_store(item.uri).download_file(item.uri, local)
                report = check.check(local, item)
        for finding in report.errors:
            text = f"{finding.text} (side file of {model_name})" if model_name else finding.text
            messages.append(finding.model_copy(update={"text": text}))
    return messages
