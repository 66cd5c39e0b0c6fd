"""Files an EnergyPlus model reads besides itself: the CSV a ``Schedule:File`` names, the files an ``.imf`` macro
model ``##include`` s, a window data file, … — found next to the model and sent to the worker with it.

Why: a real model is often a folder, not a file. EnergyPlus looks a relative file name up next to the input file,
so the worker must find each one at the same relative path beside its private copy of the model. Here, in the
control plane, every relative reference intake recorded (``facts["external_files"]``, ``facts["included_files"]``)
is looked up in the model's own folder (landing zone or ``validibot validate`` folder), refused when missing, over
the size cap, reached through a link or named like one of the worker's own files, and otherwise stored by its
SHA-256 as one of the record's resources with the role ``model-file:<relative path>`` (the worker checks every
checksum when it downloads the file, :mod:`validibot_pipelines.runtime.entrypoint`). Included macro files are
read (text only, capped) for their own ``##include`` s and file references, to a bounded depth and count.

Absolute paths, ``..`` and URLs never get here: intake already refused them (``EP_UNSAFE_OBJECT``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from validibot_pipelines.envelopes import InputFileItem, Severity, Status, ValidationMessage
from validibot_pipelines.intake.common import decode_text, format_bytes
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.storage.base import CHUNK

ROLE_PREFIX = "model-file:"
#: Names the worker itself writes beside the model's private copy (``run/in.idf``, EPMacro's ``out.idf`` …); a
#: model file of the same name would be overwritten or would overwrite them.
RESERVED_NAMES = frozenset({"in.idf", "in.epjson", "in.imf", "out", "out.idf", "audit.out", "conv", "tools",
                            "expanded.idf", "eplusout.expidf"})
#: How many files one model may bring along, and how deep ``##include`` s may nest (EPMacro allows 9 levels).
MAX_MODEL_FILES = 200
MAX_INCLUDE_DEPTH = 9
MIME_BY_SUFFIX = {".csv": "text/csv", ".idf": "application/vnd.energyplus.idf", ".imf": "text/plain",
                  ".json": "application/json"}


class ModelFileCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    MISSING = "EP_FILE_MISSING"
    TOO_LARGE = "EP_FILE_TOO_LARGE"
    UNSAFE = "EP_FILE_UNSAFE"
    TOO_MANY = "EP_TOO_MANY_FILES"


def role_for(relative: str) -> str:
    return ROLE_PREFIX + relative


def relative_of(role: str) -> str | None:
    """The path relative to the model that a ``model-file:`` role places its file at (``None``: another role)."""
    return role[len(ROLE_PREFIX):] if role.startswith(ROLE_PREFIX) else None


def normalised_reference(reference: str) -> str:
    """``schedules\\occ.csv`` / ``./occ.csv`` -> ``schedules/occ.csv``: models written on Windows run here too."""
    parts = [p for p in reference.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def reserved_reason(relative: str) -> str | None:
    """Why a relative path cannot be placed beside the worker's copy of the model (``None``: it can)."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts:
        return "is not a path inside the model's folder"
    if parts[0].lower() in RESERVED_NAMES:
        return (f"is named like a file the worker writes beside the model ({parts[0]}); rename it (and the "
                "reference in the model)")
    return None


def attach_model_files(record: ModelRecord, store_uri: str, max_bytes: int) -> None:
    """Store every file the model references (and, for macro models, what its includes reference) as a resource.

    Findings are ERRORs naming the model, the file (its location is the relative path) and the fix; the record fails
    (``failed_validation``): a missing schedule is the model's fault, and EnergyPlus would stop on it anyway.
    """
    folder = record.source_uri.rsplit("/", 1)[0]
    # (relative path, include depth, whether it is a macro include that may hold further references)
    pending = [(normalised_reference(r), 1, True) for r in record.facts.get("included_files", [])]
    pending += [(normalised_reference(r), 0, False) for r in record.facts.get("external_files", [])]
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="validibot-modelfiles-") as tmp:
        while pending:
            relative, depth, include = pending.pop(0)
            if relative in seen:
                continue
            seen.add(relative)
            if len(seen) > MAX_MODEL_FILES:
                _fail(record, ModelFileCode.TOO_MANY, relative,
                      f"is one more than the {MAX_MODEL_FILES} files a model may read; merge schedules into fewer "
                      "CSV files (each Schedule:File reads one column of a multi-column file)")
                return
            local = _fetch(record, folder, relative, Path(tmp) / f"{len(seen)}", max_bytes)
            if local is None:
                continue
            if include and depth <= MAX_INCLUDE_DEPTH:
                includes, files = _references_in_include(record, relative, local)
                pending += [(normalised_reference(r), depth + 1, True) for r in includes]
                pending += [(normalised_reference(r), depth, False) for r in files]
            _store(record, store_uri, relative, local)


def _fetch(record: ModelRecord, folder: str, relative: str, dest: Path, max_bytes: int) -> Path | None:
    """Copy ``folder/relative`` to ``dest`` (hashing as it goes, stopping past ``max_bytes``); ``None`` with a
    finding when it is missing, unsafe or too large."""
    problem = reserved_reason(relative)
    if problem:
        _fail(record, ModelFileCode.UNSAFE, relative, problem)
        return None
    uri = join_uri(folder, _in_uri(folder, relative))
    store = get_store(uri)
    link = _through_link(folder, uri)
    if link:
        _fail(record, ModelFileCode.UNSAFE, relative, f"{link}; copy the file itself into the model's folder")
        return None
    if not store.exists(uri):
        _fail(record, ModelFileCode.MISSING, relative,
              f"is not in the model's folder; upload it next to {record.file_name} at that relative path (or fix "
              "the file name in the model; names are case-sensitive on the workers)")
        return None
    size = 0
    try:
        with store.open_read(uri) as src, open(dest, "wb") as dst:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    _fail(record, ModelFileCode.TOO_LARGE, relative,
                          f"is over the {format_bytes(max_bytes)} limit for files a model reads (energyplus_file_"
                          "max_bytes); shorten it (e.g. hourly instead of minute data) or raise the setting")
                    return None
                dst.write(chunk)
    except PermissionError:  # the upload's own permissions: the author's to fix, not a system fault
        _fail(record, ModelFileCode.UNSAFE, relative, "cannot be read (permission denied); make it readable")
        return None
    return dest


def _in_uri(base: str, path: str) -> str:
    """``path`` as it goes into a URI under ``base``: percent-encoded for ``file://`` (a space, ``#`` or ``%`` in a
    schedule's name must not be read as URI syntax), as-is for bucket keys."""
    return quote(path, safe="/") if base.startswith("file://") else path


def _through_link(folder: str, uri: str) -> str | None:
    """For a local folder: why the file is not a regular file reached without links (``None`` when it is)."""
    if not uri.startswith("file://"):
        return None  # buckets hold objects, no links
    from validibot_pipelines.storage.local import uri_to_path

    path, root = uri_to_path(uri), uri_to_path(folder)
    if not path.exists() and not path.is_symlink():
        return None  # missing: reported as such
    if path.is_symlink() or not path.is_file():
        return "is a symbolic link or not a regular file, which intake never follows"
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        return "is reached through a symbolic link leading outside the model's folder"
    return None


def _store(record: ModelRecord, store_uri: str, relative: str, local: Path) -> None:
    digest = hashlib.sha256()
    with open(local, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    sha = digest.hexdigest()
    leaf = PurePosixPath(relative).name
    canonical = join_uri(store_uri, "resources", sha, _in_uri(store_uri, leaf))
    mime = MIME_BY_SUFFIX.get(PurePosixPath(leaf).suffix.lower(), "application/octet-stream")
    get_store(canonical).upload_file(local, canonical, content_type=mime)
    # The staged name must be unique among the envelope's files (the worker stages them all in one folder) and
    # short (a long relative path must not become a file name over 255 bytes); the role carries where it belongs.
    index = sum(1 for r in record.resources if relative_of(r.role) is not None)
    record.resources.append(InputFileItem(name=f"model-file-{index}{PurePosixPath(leaf).suffix[:16]}", mime_type=mime,
                                          role=role_for(relative), uri=canonical, size_bytes=local.stat().st_size,
                                          sha256=sha))


def _references_in_include(record: ModelRecord, relative: str, local: Path) -> tuple[list[str], list[str]]:
    """The safe ``##include`` s and file references of an included file; unsafe ones become findings."""
    from validibot_pipelines.validators.energyplus.intake import macro_references, unsafe_reference_reason

    text = decode_text(local.read_bytes()).text
    if text is None:
        _fail(record, ModelFileCode.UNSAFE, relative, "is not text; an ##include must name an IDF text file")
        return [], []
    includes, files = macro_references(text)
    unsafe = {r: why for r in [*includes, *files] if (why := unsafe_reference_reason(r))}
    for reference, problem in unsafe.items():
        _fail(record, ModelFileCode.UNSAFE, relative, f"names '{reference}', which {problem}; name files "
              "relative to the model and upload them next to it")
    return [r for r in includes if r not in unsafe], [r for r in files if r not in unsafe]


def _fail(record: ModelRecord, code: str, relative: str, problem: str) -> None:
    record.status = Status.FAILED_VALIDATION
    record.findings.append(ValidationMessage(
        severity=Severity.ERROR, code=code, location=relative,
        text=f"{record.file_name}: the file '{relative}' the model reads {problem}"))
