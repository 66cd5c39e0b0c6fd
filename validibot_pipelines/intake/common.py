"""What every intake check shares, whatever the file kind (FMU, IDF, EPW, STEP, ...).

Intake runs in the control plane, before a file is handed to an isolated worker. It therefore only ever *reads
bytes* (stat, hash, ZIP directory, XML text) and never loads native code or runs anything from the upload. Its
job is to turn "this upload will crash or endanger a worker" into a precise, user-facing finding early and cheaply.

Two outcomes are kept deliberately apart, matching :class:`~validibot_pipelines.envelopes.base.Status`:

* a bad upload is the *user's* fault: the check returns an :class:`IntakeReport` with ``accepted=False`` and
  findings that say what is wrong and how to fix it (``failed_validation``). Intake never raises for bad input;
* the control plane failing to look at the file at all (missing path, not a regular file, I/O error) is the
  *system's* fault: :class:`IntakeError` is raised (``failed_runtime``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

from validibot_pipelines.envelopes.base import Severity, ValidationMessage

MiB = 1024 * 1024
#: Read size for hashing and for streaming ZIP members: large enough to be fast, small enough that memory use
#: stays constant whatever the size of the upload.
CHUNK_BYTES = 1 * MiB
#: Past this many findings with the same code the rest are summarised in one message, so a crafted archive with
#: 10,000 bad members yields a readable report instead of a 10,000-line one.
MAX_FINDINGS_PER_CODE = 20
#: ``C:`` at the start of a name: absolute on Windows, so it escapes any folder the worker extracts or resolves into.
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
#: Above this share of control characters a decoded "text" file is really binary (an image, a zip, an .exe
#: renamed to .idf). Real text files have none apart from tab/CR/LF and the odd form feed or DOS EOF marker.
MAX_CONTROL_RATIO = 0.01
#: Every byte except the C0 controls and DEL that text files never contain (tab, LF, VT, FF, CR and the DOS EOF
#: marker ``^Z`` are fine). Deleting these with ``bytes.translate`` counts the rest in C, fast even at 20 MiB;
#: counting bytes is exact for UTF-8 too, whose multi-byte sequences never use the ASCII range.
_NON_CONTROL_BYTES = bytes(b for b in range(256) if not ((b < 0x20 or b == 0x7F) and b not in b"\t\n\x0b\x0c\r\x1a"))
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class IntakeError(RuntimeError):
    """The control plane could not examine the file at all (a system fault, not a problem with the upload).

    Bad uploads never raise this; they produce a rejected :class:`IntakeReport` instead. Callers should map this
    error to ``failed_runtime`` and a rejected report to ``failed_validation``.
    """


class IntakeReport(BaseModel):
    """Outcome of the control-plane checks on one uploaded file.

    ``facts`` carries what intake learned cheaply (versions, names, sizes) so later steps and the UI can use it
    without opening the file again. ``sha256`` is ``None`` only when the file was rejected before it was read
    (it was over the size cap, so reading it just to hash it would defeat the cap).
    """

    model_config = ConfigDict(extra="forbid")

    file_name: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    accepted: bool
    findings: list[ValidationMessage] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _accepted_matches_findings(self) -> IntakeReport:
        # A report that says "accepted" while carrying an ERROR would let a bad file through; refuse to build one.
        if self.accepted and self.errors:
            raise ValueError("an IntakeReport with ERROR findings cannot be accepted")
        return self

    @classmethod
    def build(
        cls,
        file_name: str,
        size_bytes: int,
        findings: list[ValidationMessage],
        facts: dict[str, Any] | None = None,
        sha256: str | None = None,
    ) -> IntakeReport:
        """Build a report whose ``accepted`` flag is derived from the findings, so the two can never disagree."""
        return cls(
            file_name=file_name,
            sha256=sha256,
            size_bytes=size_bytes,
            accepted=not any(f.severity == Severity.ERROR for f in findings),
            findings=findings,
            facts=facts or {},
        )

    @property
    def errors(self) -> list[ValidationMessage]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[ValidationMessage]:
        return [f for f in self.findings if f.severity == Severity.WARNING]

    @property
    def codes(self) -> list[str]:
        """Finding codes in report order; handy for routing and for tests."""
        return [f.code for f in self.findings]


class Findings:
    """Collects findings for one file, prefixing every text with the file name and capping repeats per code.

    Prefixing here (rather than in every check) guarantees that each message names the file the user uploaded,
    which matters when a workflow takes several files.
    """

    def __init__(self, file_name: str, max_per_code: int = MAX_FINDINGS_PER_CODE) -> None:
        self.file_name = file_name
        self.max_per_code = max_per_code
        self._items: list[ValidationMessage] = []
        self._seen: Counter[str] = Counter()
        self._suppressed: Counter[tuple[Severity, str]] = Counter()

    def add(self, severity: Severity, code: str, text: str, location: str | None = None) -> None:
        """Record a finding; ``text`` states the problem and the fix, without the file name."""
        code = str(code)
        self._seen[code] += 1
        if self._seen[code] > self.max_per_code:
            self._suppressed[(severity, code)] += 1
            return
        self._items.append(
            ValidationMessage(severity=severity, code=code, text=f"{self.file_name}: {text}", location=location)
        )

    def error(self, code: str, text: str, location: str | None = None) -> None:
        self.add(Severity.ERROR, code, text, location)

    def warning(self, code: str, text: str, location: str | None = None) -> None:
        self.add(Severity.WARNING, code, text, location)

    def items(self) -> list[ValidationMessage]:
        """All findings in the order found, plus one summary per code whose repeats were capped."""
        summaries = [
            ValidationMessage(
                severity=severity,
                code=code,
                text=f"{self.file_name}: {count} more {code} finding(s) not shown; fix the ones listed and re-check",
            )
            for (severity, code), count in self._suppressed.items()
        ]
        return [*self._items, *summaries]


def format_bytes(n: int | float) -> str:
    """Human-readable size for messages (users think in MiB, not in byte counts)."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - loop always returns


#: Longest accepted upload name, in UTF-8 bytes. Why not 255 (Linux's NAME_MAX): the pipeline writes files
#: whose names are derived from the upload's — ``<name>.validation.yaml`` beside it, ``.<name>.<random>.part``
#: while storing it atomically, ``<name>.preview.json`` in a bundle — and each of those must fit in 255 bytes
#: too. A 250-byte name used to end as a "check credentials" system error; it is refused here instead.
MAX_FILE_NAME_BYTES = 200


def file_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be taken in (the problem and the fix, without the name), or ``None``."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size <= MAX_FILE_NAME_BYTES:
        return None
    return (f"the file name is {size} bytes long, over the {MAX_FILE_NAME_BYTES}-byte limit (file names the "
            f"pipeline derives from it, such as '<name>.validation.yaml', must fit the 255-byte file-name limit); "
            f"rename the file to at most {MAX_FILE_NAME_BYTES} bytes and upload it again")


def shown_name(name: str, limit: int = 100) -> str:
    """``name`` shortened for a message (head and tail kept), so a 250-character name cannot flood a report."""
    return name if len(name) <= limit else f"{name[: limit - 25]}…{name[-24:]}"


def regular_file_size(path: Path) -> int:
    """Size of ``path`` from ``stat`` alone, without opening or reading it.

    Raises :class:`IntakeError` when the path is missing or not a regular file: the control plane put it there,
    so that is a system fault. Refusing FIFOs and devices also keeps a later ``open()``/``read()`` from blocking.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise IntakeError(f"cannot stat {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise IntakeError(f"{path} is not a regular file; intake only examines staged local files")
    return st.st_size


def size_cap_finding(findings: Findings, code: str, size_bytes: int, max_bytes: int, kind: str) -> bool:
    """Add ``code`` if the file is over ``max_bytes``; return ``True`` when it was (the caller should stop).

    Every kind runs this first, from ``stat`` alone, so a 5 GB upload is rejected without reading a byte of it.
    """
    if size_bytes <= max_bytes:
        return False
    findings.error(
        code,
        f"file is {format_bytes(size_bytes)}, over the {format_bytes(max_bytes)} limit for {kind} uploads; "
        f"reduce its size (drop unused resources or extra platforms) and upload it again",
    )
    return True


def sha256_stream(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> tuple[str, int]:
    """SHA-256 hex digest and byte count of the rest of ``stream``, read in fixed-size chunks (constant memory)."""
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(chunk_bytes):
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def sha256_file(path: Path | str, chunk_bytes: int = CHUNK_BYTES) -> tuple[str, int]:
    """SHA-256 hex digest and size of a local file, streamed in 1 MiB chunks so memory use stays constant.

    The digest is the file's identity in envelopes (``InputFileItem.sha256``), so it is computed over exactly the
    bytes that intake examined.
    """
    with open(path, "rb") as fh:
        return sha256_stream(fh, chunk_bytes)


def read_capped(stream: BinaryIO, cap: int, chunk_bytes: int = CHUNK_BYTES) -> bytes | None:
    """Read ``stream`` to EOF, or return ``None`` as soon as more than ``cap`` bytes came out.

    Never trusts a declared size: a ZIP entry can claim 1 KiB and inflate to gigabytes, and a staged file can
    grow between ``stat`` and ``read``, so the bytes themselves are counted and at most ``cap + 1`` are ever held
    in memory.
    """
    chunks: list[bytes] = []
    read = 0
    while chunk := stream.read(min(chunk_bytes, cap + 1 - read)):
        read += len(chunk)
        if read > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def read_file_capped(path: Path | str, cap: int) -> bytes | None:
    """All bytes of a staged local file, or ``None`` if it holds more than ``cap`` (it grew after ``stat``).

    For the text kinds (IDF, epJSON, EPW, ...) that intake parses in memory. The caller hashes the returned bytes,
    so the digest describes exactly what was checked. I/O failure is the control plane's fault: :class:`IntakeError`.
    """
    try:
        with open(path, "rb") as fh:
            return read_capped(fh, cap)
    except OSError as exc:
        raise IntakeError(f"cannot read staged file {path}: {exc.strerror or exc}") from exc


def read_upload_capped(path: Path | str, findings: Findings, code: str, max_bytes: int,
                       kind: str) -> tuple[int, bytes | None]:
    """``(size, bytes)`` of a staged upload that intake parses in memory (IDF, epJSON, STEP, STL), or
    ``(size, None)`` after adding the over-size finding ``code``.

    The cap is checked from ``stat`` first, so a 5 GB upload is never read; the read is capped again because
    the file may grow between ``stat`` and ``read``. The caller hashes the returned bytes, so the digest
    describes exactly what was checked.
    """
    size = regular_file_size(Path(path))
    if size_cap_finding(findings, code, size, max_bytes, kind):
        return size, None
    data = read_file_capped(path, max_bytes)
    if data is None:  # it grew between stat and read
        size_cap_finding(findings, code, max_bytes + 1, max_bytes, kind)
    return size, data


@dataclass(frozen=True)
class DecodedText:
    """Result of :func:`decode_text`: either ``text`` and the ``encoding`` that produced it, or a ``problem``."""

    text: str | None
    encoding: str | None
    problem: str | None = None


def decode_text(data: bytes, max_control_ratio: float = MAX_CONTROL_RATIO) -> DecodedText:
    """Decode an uploaded text file, or say (user-facing, without the fix) why it is not text.

    UTF-8 is tried first (a UTF-8 BOM is dropped), then Windows-1252 and finally Latin-1, because text-based
    engineering formats (IDF, EPW, ...) predate UTF-8 and Latin-1/Windows-1252 files are common in the wild.
    Latin-1 decodes *any* byte string, so binary files are recognised by their bytes instead: a NUL byte, or more
    than ``max_control_ratio`` control characters. UTF-16 (Windows "Unicode") is named explicitly, as its NUL
    bytes would otherwise be reported as "binary" to a user who just saved a text file the wrong way.
    """
    if data.startswith(_UTF16_BOMS):
        return DecodedText(None, None, "is UTF-16 encoded text, which the tools cannot read")
    if b"\x00" in data:
        offset = data.index(b"\x00")
        return DecodedText(None, None, f"contains a NUL byte (at byte {offset:,}), so it is a binary file, not text")
    controls = len(data.translate(None, _NON_CONTROL_BYTES))
    if data and controls / len(data) > max_control_ratio:
        return DecodedText(
            None,
            None,
            f"is binary ({controls:,} control characters in {len(data):,} bytes), so it is not a text file",
        )
    text: str | None = None
    encoding = "latin-1"
    for candidate in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(candidate)
            encoding = "utf-8" if candidate == "utf-8-sig" else candidate
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        text = data.decode("latin-1")
    return DecodedText(text, encoding)
