"""Control-plane intake checks for FMUs (FMI 2.0 and 3.0 Co-Simulation).

An FMU is a ZIP archive holding ``modelDescription.xml`` and native libraries under ``binaries/<platform>/``. The
worker will later extract it and load one of those libraries, so anything that can hurt the worker or the host
must be caught *here*, where only Python's ``zipfile`` and ``defusedxml`` touch the bytes:

* resource exhaustion: oversize uploads, too many members, zip bombs (judged from the central directory without
  extracting, and again by capping every decompression, because declared sizes can lie);
* path tricks on extraction: zip-slip (``..``), absolute paths, drive letters, backslashes, symlinks;
* executables smuggled next to the model (``.exe``, ``.sh``, ...);
* hostile XML: DTDs, external entities (XXE) and entity expansion ("billion laughs");
* plain breakage users hit daily: a truncated upload, a missing or non-UTF-8 ``modelDescription.xml``, a
  Model-Exchange-only FMU, or no Linux binary.

Nothing here imports dagster or loads native code. :func:`check_fmu` never raises for bad input; it returns an
:class:`~validibot_pipelines.intake.common.IntakeReport` whose findings carry stable codes (:class:`FmuCode`).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import ErrorString

import defusedxml.ElementTree as SafeET
from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.intake.common import (
    CHUNK_BYTES,
    DRIVE_LETTER,
    Findings,
    IntakeError,
    IntakeReport,
    MiB,
    format_bytes,
    read_capped,
    regular_file_size,
    sha256_stream,
    size_cap_finding,
)

MODEL_DESCRIPTION = "modelDescription.xml"
#: Platform folder names the Linux workers can load: FMI 2 uses ``linux64``, FMI 3 ``x86_64-linux``.
LINUX_PLATFORMS = ("linux64", "x86_64-linux")
#: Member suffixes that are programs or scripts, never part of a legitimate FMU (compared case-insensitively).
#: Shared libraries (``.so``/``.dll``/``.dylib``) are normal under ``binaries/`` and are not listed.
BANNED_SUFFIXES = frozenset({".exe", ".bat", ".sh", ".cmd"})

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_XML_DECL_ENCODING = re.compile(rb"""\A\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_PREFIXES = (b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")
_S_IFMT = 0o170000
_S_IFLNK = 0o120000


#: modelDescription elements of the FMI interfaces, in the order a model's identifier is taken from.
INTERFACE_TAGS = {"CoSimulation": "co_simulation", "ModelExchange": "model_exchange",
                  "ScheduledExecution": "scheduled_execution"}


class FmuCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "FMU_TOO_LARGE"
    NOT_ZIP = "FMU_NOT_ZIP"
    TRUNCATED = "FMU_TRUNCATED"
    UNREADABLE = "FMU_UNREADABLE"
    TOO_MANY_MEMBERS = "FMU_TOO_MANY_MEMBERS"
    ZIP_BOMB = "FMU_ZIP_BOMB"
    UNSAFE_PATH = "FMU_UNSAFE_PATH"
    DUPLICATE_MEMBER = "FMU_DUPLICATE_MEMBER"
    BANNED_MEMBER = "FMU_BANNED_MEMBER"
    NO_MODEL_DESCRIPTION = "FMU_NO_MODEL_DESCRIPTION"
    XML_NOT_UTF8 = "FMU_XML_NOT_UTF8"
    XML_UNSAFE = "FMU_XML_UNSAFE"
    XML_INVALID = "FMU_XML_INVALID"
    UNSUPPORTED_FMI_VERSION = "FMU_UNSUPPORTED_FMI_VERSION"
    NO_COSIMULATION = "FMU_NO_COSIMULATION"  # no longer raised: Model Exchange FMUs are simulated too
    NO_INTERFACE = "FMU_NO_INTERFACE"
    INTERFACE_UNSUPPORTED = "FMU_INTERFACE_UNSUPPORTED"
    NO_BINARIES = "FMU_NO_BINARIES"  # WARNING
    BINARY_NOT_ELF = "FMU_BINARY_NOT_ELF"


class FmuLimits(BaseModel):
    """Resource caps for FMU intake. Defaults suit typical uploads; deployments may tighten or loosen them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Upload size on disk, checked from ``stat`` before anything is read.
    max_bytes: int = Field(default=50 * MiB, gt=0)
    #: Sum of the declared uncompressed member sizes, i.e. what extraction would write to the worker's disk.
    max_uncompressed_bytes: int = Field(default=500 * MiB, gt=0)
    #: Total uncompressed size / archive size. Real FMUs sit well below this; zip bombs sit far above it.
    max_ratio: float = Field(default=100.0, gt=0)
    #: The ratio is only judged once the content is at least this big: a 40 KiB XML that compresses 150x is
    #: harmless, and judging it would reject legitimate tiny FMUs.
    min_bytes_for_ratio: int = Field(default=10 * MiB, ge=0)
    max_members: int = Field(default=10_000, gt=0)
    #: Most bytes ever decompressed from ``modelDescription.xml`` (it is parsed in memory).
    max_model_description_bytes: int = Field(default=32 * MiB, gt=0)
    #: Decompress every member (streamed, capped by ``max_uncompressed_bytes``) to verify its CRC, so a damaged
    #: upload is reported here instead of failing later inside a worker.
    verify_members: bool = True


DEFAULT_FMU_LIMITS = FmuLimits()


def check_fmu(path: Path, file_name: str, limits: FmuLimits = DEFAULT_FMU_LIMITS) -> IntakeReport:
    """Run every control-plane check on the FMU staged at ``path`` and report what was found.

    ``file_name`` is the name the user uploaded; it prefixes every finding so messages make sense to them. The
    report is ``accepted`` when no ERROR was found. Bad input never raises: only the control plane being unable
    to read its own staged file raises :class:`~validibot_pipelines.intake.common.IntakeError`.
    """
    path = Path(path)
    findings = Findings(file_name)
    facts: dict[str, Any] = {
        "fmi_version": None,
        "model_name": None,
        "guid": None,  # FMI 3: the instantiationToken, which plays the same role
        "model_identifier": None,
        "platforms": [],
        "member_count": None,
        "total_uncompressed_bytes": None,
    }

    size = regular_file_size(path)
    # The size cap comes first and uses stat only: a 5 GB upload must not even be hashed.
    if size_cap_finding(findings, FmuCode.TOO_LARGE, size, limits.max_bytes, "FMU"):
        return IntakeReport.build(file_name, size, findings.items(), facts)

    try:
        with path.open("rb") as fh:
            # Hash and inspect the same open file, so the digest describes exactly the bytes that were checked.
            digest, size = sha256_stream(fh)
            if not size_cap_finding(findings, FmuCode.TOO_LARGE, size, limits.max_bytes, "FMU"):
                fh.seek(0)
                _check_archive(fh, size, limits, findings, facts)
    except OSError as exc:
        raise IntakeError(f"cannot read staged file {path}: {exc.strerror or exc}") from exc
    return IntakeReport.build(file_name, size, findings.items(), facts, sha256=digest)


def _check_archive(fh: BinaryIO, size: int, limits: FmuLimits, findings: Findings, facts: dict[str, Any]) -> None:
    """Open the ZIP and run the archive checks, turning any parser failure into a finding, never an exception."""
    try:
        archive = zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        fh.seek(0)
        if fh.read(len(_ZIP_LOCAL_HEADER)) == _ZIP_LOCAL_HEADER:
            # Starts like a ZIP but the central directory (stored at the end) is gone: a cut-short upload.
            findings.error(
                FmuCode.TRUNCATED,
                "starts like a ZIP archive but its central directory is missing or damaged, so the upload was "
                "probably cut short; upload the complete file again",
            )
        else:
            findings.error(
                FmuCode.NOT_ZIP,
                "is not a ZIP archive, but an FMU must be one; export the model as an FMU (Co-Simulation) from "
                "your modelling tool instead of uploading a renamed or bare file",
            )
        return
    except MemoryError:
        raise
    except Exception as exc:  # crafted archives can trip odd errors inside zipfile; never raise
        _unreadable(findings, exc)
        return

    with archive:
        try:
            _check_members(archive, size, limits, findings, facts)
        except MemoryError:
            raise
        except Exception as exc:  # same reason as above
            _unreadable(findings, exc)


def _unreadable(findings: Findings, exc: Exception, member: str | None = None) -> None:
    what = f"member '{member}'" if member else "archive"
    findings.error(
        FmuCode.UNREADABLE,
        f"{what} could not be read ({type(exc).__name__}: {exc}); rebuild the FMU with a standard ZIP tool "
        f"(deflate or stored compression, no encryption)",
        location=member,
    )


def _check_members(
    archive: zipfile.ZipFile, size: int, limits: FmuLimits, findings: Findings, facts: dict[str, Any]
) -> None:
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    ratio = total / max(size, 1)
    platforms = sorted(
        {parts[1] for parts in (i.filename.split("/") for i in infos if not i.is_dir()) if _is_platform(parts)}
    )
    facts.update(
        member_count=len(infos),
        total_uncompressed_bytes=total,
        compression_ratio=round(ratio, 2),
        platforms=platforms,
    )

    too_many = len(infos) > limits.max_members
    if too_many:
        findings.error(
            FmuCode.TOO_MANY_MEMBERS,
            f"has {len(infos):,} members, over the {limits.max_members:,} limit; remove unneeded files "
            f"(documentation, sources, resources) and re-export the FMU",
        )
    bomb = _check_declared_sizes(infos, total, ratio, size, limits, findings)

    unreadable: set[str] = set()
    seen: dict[str, tuple[int, int]] = {}
    for info in infos:
        name = info.filename
        if name in seen and seen[name] != (info.CRC, info.file_size):
            findings.error(
                FmuCode.DUPLICATE_MEMBER,
                f"member '{name}' appears more than once with different contents, so different tools would "
                f"extract different files; rebuild the FMU so every path is unique",
                location=name,
            )
        elif name in seen and not name.endswith("/"):
            # Byte-identical repeats (the Reference FMUs' CMake build writes extra/ twice): every tool extracts
            # the same file, so it is worth a warning, not a refusal.
            findings.warning(
                FmuCode.DUPLICATE_MEMBER,
                f"member '{name}' appears more than once (identical copies); rebuild the FMU so every path is "
                f"unique",
                location=name,
            )
        seen.setdefault(name, (info.CRC, info.file_size))
        _check_member_path(info, findings)
        if info.flag_bits & 0x1:
            unreadable.add(name)
            findings.error(
                FmuCode.UNREADABLE,
                f"member '{name}' is encrypted, so the worker cannot extract it; rebuild the FMU without a password",
                location=name,
            )

    md_info = _find_model_description(infos, findings)
    if md_info is not None and md_info.filename not in unreadable:
        data = _read_model_description(archive, md_info, limits, findings)
        if data is not None:
            _check_model_description_xml(data, findings, facts)

    if not any(p in platforms for p in LINUX_PLATFORMS):
        found = ", ".join(platforms) or "none"
        findings.warning(
            FmuCode.NO_BINARIES,
            f"has no Linux 64-bit binary (binaries/linux64 for FMI 2 or binaries/x86_64-linux for FMI 3; "
            f"platforms found: {found}), so the Linux worker can only run it if it ships compilable sources; "
            f"re-export the FMU with a Linux x86-64 binary",
            location="binaries/",
        )

    if not too_many:  # a crafted archive with 10^5 members is reported as such, not opened member by member
        _check_linux_binaries(archive, infos, unreadable, findings)

    # Full CRC verification decompresses everything, so only do it once the archive is known not to be a bomb.
    if limits.verify_members and not (bomb or too_many):
        skip = unreadable | ({md_info.filename} if md_info is not None else set())
        _verify_member_crcs(archive, infos, skip, limits, findings)


#: Every Linux shared library starts with the ELF magic; anything else under binaries/<linux platform>/ cannot load.
_ELF_MAGIC = b"\x7fELF"


def _check_linux_binaries(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], unreadable: set[str], findings: Findings
) -> None:
    """Each ``binaries/<linux platform>/*.so`` must be an ELF file.

    Why here: a Windows DLL renamed to ``.so``, or a text file under ``linux64`` otherwise reaches
    the worker and fails there with a loader error that does not name the member. Only the first 8 bytes of
    each member are decompressed, and nothing is loaded: intake is control plane.
    """
    for info in infos:
        parts = info.filename.split("/")
        if info.is_dir() or info.filename in unreadable or not _is_platform(parts) or parts[1] not in LINUX_PLATFORMS:
            continue
        if not re.search(r"\.so(\.[0-9]+)*$", parts[-1]):
            continue
        try:
            with archive.open(info) as member:
                header = member.read(8)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            _member_read_failed(findings, info, exc)
            continue
        if header.startswith(_ELF_MAGIC):
            continue
        what = ("a Windows DLL, not" if header.startswith(b"MZ") else
                "a macOS library, not" if header[:4] in _MACHO else "not")
        findings.error(
            FmuCode.BINARY_NOT_ELF,
            f"member '{info.filename}' is {what} an ELF shared library (it starts with {header!r}), so the Linux "
            f"worker cannot load it; re-export the FMU with "
            f"a Linux x86-64 binary in binaries/{parts[1]}/ (or remove the folder if the FMU has no Linux build)",
            location=info.filename,
        )


_MACHO = {b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xcf"}


def _is_platform(parts: list[str]) -> bool:
    return len(parts) >= 3 and parts[0] == "binaries" and bool(parts[1]) and bool(parts[-1])


def _check_declared_sizes(
    infos: list[zipfile.ZipInfo], total: int, ratio: float, size: int, limits: FmuLimits, findings: Findings
) -> bool:
    """Judge the central directory's declared sizes without extracting anything; ``True`` if it looks like a bomb."""
    biggest = max(infos, key=lambda i: i.file_size).filename if infos else None
    if total > limits.max_uncompressed_bytes:
        findings.error(
            FmuCode.ZIP_BOMB,
            f"declares {format_bytes(total)} of uncompressed content, over the "
            f"{format_bytes(limits.max_uncompressed_bytes)} limit (largest member: '{biggest}'); remove oversized "
            f"or padding files and re-export the FMU",
            location=biggest,
        )
        return True
    if total >= limits.min_bytes_for_ratio and ratio > limits.max_ratio:
        findings.error(
            FmuCode.ZIP_BOMB,
            f"expands {ratio:,.0f}x (from {format_bytes(size)} to {format_bytes(total)}), over the "
            f"{limits.max_ratio:,.0f}x limit, which is the signature of a zip bomb (largest member: '{biggest}'); "
            f"remove zero-filled or padding files and re-export the FMU",
            location=biggest,
        )
        return True
    return False


def _check_member_path(info: zipfile.ZipInfo, findings: Findings) -> None:
    """Flag member paths that would write outside the extraction folder, and banned executables."""
    name = info.filename
    reason = None
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        reason = "is a symbolic link, which can point extraction outside the archive"
    elif not name:
        reason = "has an empty name"
    elif name.startswith("/"):
        reason = "is an absolute path, which extracts outside the archive"
    elif DRIVE_LETTER.match(name):
        reason = "starts with a drive letter, which extracts outside the archive on Windows"
    elif "\\" in name:
        reason = "contains a backslash, which Windows tools treat as a folder separator (a zip-slip vector)"
    elif ".." in name.split("/"):
        reason = "escapes the archive (zip-slip) through a '..' component"
    if reason:
        findings.error(
            FmuCode.UNSAFE_PATH,
            f"member '{name}' {reason}; rebuild the FMU with relative paths only",
            location=name,
        )

    if info.is_dir():
        return
    # Windows ignores trailing dots and spaces, so "run.exe." is still run.exe.
    suffix = Path(name.replace("\\", "/").rstrip(". ")).suffix.lower()
    if suffix in BANNED_SUFFIXES:
        findings.error(
            FmuCode.BANNED_MEMBER,
            f"member '{name}' is an executable or script ({suffix}), which an FMU must not contain (only shared "
            f"libraries under binaries/); remove it and rebuild the FMU",
            location=name,
        )


def _find_model_description(infos: list[zipfile.ZipInfo], findings: Findings) -> zipfile.ZipInfo | None:
    matches = [i for i in infos if i.filename == MODEL_DESCRIPTION]
    if matches:
        return matches[-1]  # the one zipfile (and most extractors) would use; duplicates are flagged separately
    wanted = MODEL_DESCRIPTION.lower()
    near = [i.filename for i in infos if i.filename.replace("\\", "/").rsplit("/", 1)[-1].lower() == wanted]
    if near:
        hint = (
            f"found '{near[0]}' instead; modelDescription.xml must sit at the archive root with exactly that "
            f"spelling (zip the FMU's contents, not the folder containing them)"
        )
    else:
        hint = "export the model as an FMU from your modelling tool instead of zipping files by hand"
    findings.error(
        FmuCode.NO_MODEL_DESCRIPTION,
        f"has no {MODEL_DESCRIPTION} at the archive root, so it is not an FMU; {hint}",
        location=MODEL_DESCRIPTION,
    )
    return None


def _read_model_description(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: FmuLimits, findings: Findings
) -> bytes | None:
    cap = limits.max_model_description_bytes
    bomb_text = (
        f"{MODEL_DESCRIPTION} {{}} more than the {format_bytes(cap)} limit for model descriptions (a zip bomb, "
        f"or an unusually large model); reduce the number of exposed variables or re-export the FMU"
    )
    if info.file_size > cap:
        findings.error(
            FmuCode.ZIP_BOMB, bomb_text.format(f"declares {format_bytes(info.file_size)},"), location=info.filename
        )
        return None
    try:
        with archive.open(info) as member:
            data = read_capped(member, cap)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        _member_read_failed(findings, info, exc)
        return None
    if data is None:
        findings.error(FmuCode.ZIP_BOMB, bomb_text.format("decompresses to"), location=info.filename)
    return data


def _member_read_failed(findings: Findings, info: zipfile.ZipInfo, exc: Exception) -> None:
    """Report a member that could not be decompressed: damaged data, or a method/encryption zipfile lacks."""
    if isinstance(exc, NotImplementedError | RuntimeError):  # unsupported compression method, encryption
        _unreadable(findings, exc, info.filename)
        return
    findings.error(
        FmuCode.TRUNCATED,
        f"member '{info.filename}' is truncated or damaged ({exc}), so the upload was probably cut short or "
        f"corrupted; upload the complete file again or re-export the FMU",
        location=info.filename,
    )


def _verify_member_crcs(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], skip: set[str], limits: FmuLimits, findings: Findings
) -> None:
    """Stream every member to EOF (checking CRCs) while counting real output against the uncompressed cap."""
    budget = limits.max_uncompressed_bytes
    for info in infos:
        if info.is_dir() or info.filename in skip:
            continue
        try:
            with archive.open(info) as member:
                while chunk := member.read(CHUNK_BYTES):
                    budget -= len(chunk)
                    if budget < 0:
                        findings.error(
                            FmuCode.ZIP_BOMB,
                            f"decompresses to more than the {format_bytes(limits.max_uncompressed_bytes)} limit "
                            f"(reached in member '{info.filename}') although its directory declares less; "
                            f"rebuild the FMU with a standard ZIP tool",
                            location=info.filename,
                        )
                        return
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            _member_read_failed(findings, info, exc)


def _check_model_description_xml(data: bytes, findings: Findings, facts: dict[str, Any]) -> None:
    if not _is_utf8(data, findings):
        return
    root = _parse_safely(data, findings)
    if root is not None:
        _check_model_description_content(root, findings, facts)


def _is_utf8(data: bytes, findings: Findings) -> bool:
    """FMI requires UTF-8; catch both a declaration of another encoding and bytes that are not UTF-8."""
    fix = f're-save {MODEL_DESCRIPTION} as UTF-8 (and declare encoding="UTF-8") and rebuild the FMU'
    body = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
    if body.startswith(_UTF16_PREFIXES):
        findings.error(
            FmuCode.XML_NOT_UTF8, f"{MODEL_DESCRIPTION} is UTF-16 encoded, not UTF-8; {fix}", location=MODEL_DESCRIPTION
        )
        return False
    declared = _XML_DECL_ENCODING.match(body[:1024])
    if declared and declared.group(1).decode("ascii", "replace").strip().lower() not in ("utf-8", "utf8"):
        encoding = declared.group(1).decode("ascii", "replace")
        findings.error(
            FmuCode.XML_NOT_UTF8,
            f"{MODEL_DESCRIPTION} declares encoding '{encoding}', but FMI requires UTF-8; {fix}",
            location=MODEL_DESCRIPTION,
        )
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        findings.error(
            FmuCode.XML_NOT_UTF8,
            f"{MODEL_DESCRIPTION} is not valid UTF-8 (byte 0x{body[exc.start]:02x} on line {line}); {fix}",
            location=MODEL_DESCRIPTION,
        )
        return False
    return True


def _parse_safely(data: bytes, findings: Findings) -> Element | None:
    """Parse with defusedxml, refusing DTDs, entity declarations and external references.

    Entities are refused before any expansion happens, so billion-laughs input costs nothing. DTDs are refused
    too (FMI never needs one); that check runs second only so entity attacks get the more specific message.
    """
    fix = f"FMI model descriptions need no DTD or entities; remove the <!DOCTYPE> block from {MODEL_DESCRIPTION}"
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
        if b"<!DOCTYPE" in data:
            SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        return root
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            problem = f"declares an external entity '{exc.name}' pointing at '{exc.sysid or exc.pubid}' (XXE)"
        else:
            problem = f"declares an entity '{exc.name}' (entity expansion, e.g. 'billion laughs')"
        findings.error(FmuCode.XML_UNSAFE, f"{MODEL_DESCRIPTION} {problem}; {fix}", location=MODEL_DESCRIPTION)
    except ExternalReferenceForbidden as exc:
        findings.error(
            FmuCode.XML_UNSAFE,
            f"{MODEL_DESCRIPTION} references an external resource '{exc.sysid or exc.pubid}' (XXE); {fix}",
            location=MODEL_DESCRIPTION,
        )
    except DTDForbidden:
        findings.error(
            FmuCode.XML_UNSAFE, f"{MODEL_DESCRIPTION} declares a DTD (<!DOCTYPE>); {fix}", location=MODEL_DESCRIPTION
        )
    except DefusedXmlException as exc:
        findings.error(
            FmuCode.XML_UNSAFE, f"{MODEL_DESCRIPTION} uses unsafe XML ({exc}); {fix}", location=MODEL_DESCRIPTION
        )
    except ParseError as exc:
        line, column = exc.position
        findings.error(
            FmuCode.XML_INVALID,
            f"{MODEL_DESCRIPTION} is not well-formed XML ({ErrorString(exc.code)} at line {line}, column "
            f"{column + 1}); fix the XML or re-export the FMU",
            location=MODEL_DESCRIPTION,
        )
    return None


def _check_model_description_content(root: Element, findings: Findings, facts: dict[str, Any]) -> None:
    """Check the few attributes a worker relies on, and record them as facts."""

    def invalid(problem: str, fix: str = "re-export the FMU from your modelling tool") -> None:
        findings.error(FmuCode.XML_INVALID, f"{MODEL_DESCRIPTION} {problem}; {fix}", location=MODEL_DESCRIPTION)

    if root.tag != "fmiModelDescription":
        invalid(f"has root element <{root.tag}>, not <fmiModelDescription>", "upload an FMI 2.0 or 3.0 FMU")
        return
    version = (root.get("fmiVersion") or "").strip()
    if not version:
        invalid("has no fmiVersion attribute")
        return
    major = version.split(".", 1)[0]
    if major not in ("2", "3"):
        findings.error(
            FmuCode.UNSUPPORTED_FMI_VERSION,
            f"{MODEL_DESCRIPTION} declares fmiVersion '{version}', but only FMI 2.0 and 3.0 are supported; "
            f"re-export the model as an FMI 2.0 or 3.0 Co-Simulation FMU",
            location=MODEL_DESCRIPTION,
        )
        return
    facts["fmi_version"] = version

    token_attr = "guid" if major == "2" else "instantiationToken"
    token = root.get(token_attr)
    if not token:
        invalid(f"(FMI {version}) has no {token_attr} attribute")
    facts["guid"] = token or None
    model_name = root.get("modelName")
    if not model_name:
        invalid("has no modelName attribute")
    facts["model_name"] = model_name or None

    interfaces = [(tag, element) for tag in INTERFACE_TAGS if (element := root.find(tag)) is not None]
    facts["interfaces"] = [INTERFACE_TAGS[tag] for tag, _ in interfaces]
    if not interfaces:
        findings.error(
            FmuCode.NO_INTERFACE,
            f"{MODEL_DESCRIPTION} has no <CoSimulation>, <ModelExchange> or <ScheduledExecution> element, so there "
            f"is nothing to simulate; re-export the FMU with Co-Simulation or Model Exchange enabled",
            location=MODEL_DESCRIPTION,
        )
        return
    if all(tag == "ScheduledExecution" for tag, _ in interfaces):
        findings.error(
            FmuCode.INTERFACE_UNSUPPORTED,
            f"{MODEL_DESCRIPTION} offers only Scheduled Execution; that interface needs a scheduler that "
            f"activates the model's clocked partitions, which fmpy (the engine here) does not provide, so it cannot "
            f"be validated — re-export the FMU with Co-Simulation or Model Exchange as well",
            location=MODEL_DESCRIPTION,
        )
        return
    for tag, element in interfaces:
        identifier = element.get("modelIdentifier")
        if not identifier:
            invalid(f"has a <{tag}> element without a modelIdentifier attribute")
        elif not _C_IDENTIFIER.match(identifier):
            # The worker builds binaries/<platform>/<modelIdentifier>.so from it, so it must not contain a path.
            invalid(f"has modelIdentifier '{identifier}', which is not a valid C identifier (FMI requires one)")
        else:
            facts["model_identifier"] = facts.get("model_identifier") or identifier


_EOCD = b"PK\x05\x06"


def looks_complete(_suffix: str, _size: int, head: bytes, tail: bytes) -> bool:
    """Whether a landing-zone file ends like a complete FMU (its ZIP end-of-central-directory record is last);
    one that does not start like a ZIP will not become one by waiting (the landing sensor's settle rule)."""
    if not head.startswith(b"PK"):
        return True
    end = tail.rfind(_EOCD)
    if end < 0 or end + 22 > len(tail):
        return False
    comment = int.from_bytes(tail[end + 20:end + 22], "little")
    return end + 22 + comment == len(tail)
