"""Intake in the control plane: check an upload, store it canonically by checksum, remember its spec.

Only ZIP/XML/text parsing happens here (see :mod:`validibot_pipelines.intake`) — never native code.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from validibot_pipelines.envelopes import InputFileItem, Severity, Status, ValidationMessage
from validibot_pipelines.envelopes.base import check_leaf_name
from validibot_pipelines.intake.common import file_name_problem, sha256_file, shown_name
from validibot_pipelines.orchestration.layout import model_dir, model_manifest_uri, model_spec_uri
from validibot_pipelines.orchestration.names import is_legacy_key, model_path, partition_key, relative_name
from validibot_pipelines.spec import SpecError, ValidationSpec, load_spec
from validibot_pipelines.storage import get_store, join_uri, leaf_name

SPEC_SUFFIX = ".validation.yaml"
MIME_CSV = "text/csv"


def kind_of(file_name: str) -> tuple[str, str] | None:
    """(validator kind, MIME type) for an upload's file name, or None when no validator handles it."""
    from validibot_pipelines.validators.registry import for_suffix

    found = for_suffix(Path(file_name).suffix)
    return (found[0].name, found[1]) if found else None


class ModelRecord(BaseModel):
    """What intake decided about one upload; persisted per model as ``catalog/<model>.json`` (the model's
    current version; its history is the partition's materializations in Dagster)."""

    sha256: str
    file_name: str
    name: str = ""  # the model's path in the landing zone (relative to its root); "" in records made before names
    kind: str
    mime_type: str
    size_bytes: int
    source_uri: str
    canonical_uri: str | None = None
    status: Status
    findings: list[ValidationMessage] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] | None = None
    spec_source: str | None = None
    resources: list[InputFileItem] = Field(default_factory=list)  # e.g. an uploaded weather file
    weather_name: str | None = None  # a weather file shipped with EnergyPlus

    @property
    def partition_key(self) -> str:
        """The model's Dagster partition key (its name, made safe: ``orchestration/names.py``)."""
        return partition_key(self.name or self.file_name)

    @property
    def accepted(self) -> bool:
        return self.status == Status.SUCCESS

    def validation_spec(self) -> ValidationSpec:
        return ValidationSpec.model_validate(self.spec or {})

    def input_file(self, role: str) -> InputFileItem:
        assert self.canonical_uri, "only accepted models have a canonical copy"
        return InputFileItem(name=self.file_name, mime_type=self.mime_type, role=role, uri=self.canonical_uri,
                             size_bytes=self.size_bytes, sha256=self.sha256)


IntakeLimits = dict[str, BaseModel]
"""Each validator's intake limits by its name (``ValidibotSettings.intake_limits``); a missing one: defaults."""


def intake(
    source_uri: str,
    *,
    store_uri: str,
    spec_uri: str | None = None,
    expected_sha256: str | None = None,
    limits: IntakeLimits | None = None,
    model_name: str | None = None,
) -> ModelRecord:
    """Check ``source_uri`` and, if accepted, copy it to ``models/<sha256>/``. Never touches the source.

    ``model_name`` is the model's path in the landing zone (its partition); default: the file's name.
    """
    name = leaf_name(source_uri)
    model_name = model_name or relative_name(source_uri.rsplit("/", 1)[0], source_uri)
    check_leaf_name(name)
    kind_mime = kind_of(name)
    if kind_mime is None:
        from validibot_pipelines.validators.registry import all_suffixes

        raise ValueError(f"{name}: no validator handles this file type; upload {', '.join(all_suffixes())} files")
    kind, mime = kind_mime
    special = _not_a_regular_file(source_uri)
    if special:
        return _refused(name, model_name, kind, mime, source_uri, expected_sha256, "NOT_A_REGULAR_FILE", special,
                        store_uri)
    with tempfile.TemporaryDirectory(prefix="validibot-intake-") as tmp:
        long_name = file_name_problem(name)
        local = Path(tmp) / (f"upload{Path(name).suffix[:16]}" if long_name else name)
        get_store(source_uri).download_file(source_uri, local)
        sha, size = sha256_file(local)
        record = ModelRecord(sha256=sha, file_name=name, name=model_name, kind=kind, mime_type=mime,
                             size_bytes=size, source_uri=source_uri, status=Status.SUCCESS)
        if long_name:
            record.status = Status.FAILED_VALIDATION
            record.findings.append(ValidationMessage(severity=Severity.ERROR, code="FILE_NAME_TOO_LONG",
                                                     text=f"{shown_name(name)}: {long_name}"))
            save_record(record, store_uri)
            return record
        if expected_sha256 and sha != expected_sha256:
            # A partition is the model, not one version of it: the bytes there now are what its author uploaded
            # last, so they are validated (their checksum becomes the data version) — never an older request's
            # failure recorded over a newer version that may already have been validated.
            record.findings.append(ValidationMessage(
                severity=Severity.INFO, code="SOURCE_CHANGED",
                text=f"{shown_name(model_name)}: the file changed after this run was requested (sha256 "
                     f"{expected_sha256[:12]}… registered, {sha[:12]}… now); the bytes now in the landing zone "
                     "were validated"))
        from validibot_pipelines.validators.registry import get

        validator = get(kind)
        own_limits = (limits or {}).get(kind) or validator.limits(None)
        report = validator.check(local, name, own_limits)
        record.findings.extend(report.findings)
        record.facts = report.facts
        if not report.accepted:
            record.status = Status.FAILED_VALIDATION
        _attach_spec(record, spec_uri, store_uri)
        if record.accepted:  # the side files its spec names (weather, time series, schema)
            validator.attach(record, store_uri, own_limits)
        if record.accepted:
            record.canonical_uri = _canonical_copy(local, store_uri, sha, name, mime)
    save_record(record, store_uri)
    return record


def _canonical_copy(local: Path, store_uri: str, sha: str, name: str, mime: str) -> str:
    """The model's bytes in ``models/<sha256>/``: stored once, so the same bytes under another name (with the
    same suffix: workers pick the format by it) share the copy already there."""
    store_root = model_dir(store_uri, sha)
    store = get_store(store_root)
    suffix = Path(name).suffix.lower()
    for info in store.list(store_root):
        if Path(leaf_name(info.uri)).suffix.lower() == suffix and info.size == local.stat().st_size:
            return info.uri
    uri = join_uri(store_root, name)
    store.upload_file(local, uri, content_type=mime)
    return uri


def _not_a_regular_file(source_uri: str) -> str | None:
    """For a local upload, why it is not a plain file (never opened: a FIFO would block intake forever)."""
    if not source_uri.startswith("file://"):
        return None  # buckets hold objects only
    from validibot_pipelines.storage.local import uri_to_path

    try:
        st = os.lstat(uri_to_path(source_uri))
    except OSError:
        return None  # missing: the download below reports it as before
    if stat.S_ISREG(st.st_mode):
        return None
    what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file (a folder, FIFO, socket or device)"
    return f"is {what}, which intake never follows or opens; copy the file itself into the landing zone"


def _refused(name: str, model_name: str, kind: str, mime: str, source_uri: str, sha256: str | None, code: str,
             problem: str, store_uri: str) -> ModelRecord:
    """The failed record of an upload refused before a byte of it was read (its checksum: the registered one)."""
    record = ModelRecord(sha256=sha256 or hashlib.sha256(source_uri.encode()).hexdigest(), file_name=name,
                         name=model_name, kind=kind, mime_type=mime, size_bytes=0, source_uri=source_uri,
                         status=Status.FAILED_VALIDATION,
                         findings=[ValidationMessage(severity=Severity.ERROR, code=code,
                                                     text=f"{shown_name(name)}: {problem}")])
    save_record(record, store_uri)
    return record


def _attach_spec(record: ModelRecord, spec_uri: str | None, store_uri: str) -> None:
    if not spec_uri:
        return
    spec_name = leaf_name(spec_uri)
    try:
        text = get_store(spec_uri).read_bytes(spec_uri)
    except FileNotFoundError:
        text = None
        problem = f"{spec_name}: the spec file disappeared before it could be read; upload it again"
    if text is not None:
        try:
            record.spec = load_spec(text, spec_name, record.kind).model_dump(mode="json", exclude_none=True)
            record.spec_source = spec_uri
            canonical = model_spec_uri(store_uri, record.partition_key)
            get_store(canonical).write_bytes(canonical, text, content_type="application/yaml")
            return
        except SpecError as exc:
            problem = str(exc)
    record.status = Status.FAILED_VALIDATION
    record.findings.append(ValidationMessage(severity=Severity.ERROR, code="SPEC_INVALID", text=problem,
                                             location=spec_name))





def attach_upload(record: ModelRecord, store_uri: str, name: str, mime: str, role: str) -> bool:
    """Copy a file the spec names from beside the model into the store by checksum, as one of its resources.

    ``False`` when there is no such file (or the name is not a plain file name): the caller words the finding.
    """
    uploaded = record.source_uri.rsplit("/", 1)[0] + "/" + name
    try:
        check_leaf_name(name)
        store = get_store(uploaded)
        if not store.exists(uploaded) or _not_a_regular_file(uploaded):  # a symlink beside the model is not an upload
            return False
    except ValueError:
        return False
    sha, size = store.sha256_and_size(uploaded)
    canonical = join_uri(store_uri, "resources", sha, name)
    store.copy_to(uploaded, canonical, get_store(canonical))
    record.resources.append(InputFileItem(name=name, mime_type=mime, role=role, uri=canonical,
                                          size_bytes=size, sha256=sha))
    return True


def upload_problem(record: ModelRecord, name: str) -> str | None:
    """Why :func:`attach_upload` found no file ``name`` although the spec names one, when the reason is not
    simply "nothing there": the name is not a plain file name, or what lies beside the model is a link, folder,
    FIFO… (never opened). The end of a sentence that starts with the file's name; ``None`` when it is just
    missing."""
    try:
        check_leaf_name(name)
    except ValueError:
        return ("is not a plain file name (a side file is named by its bare name, without folders, '/' or "
                "'..'); upload it beside the model and give only its name")
    return _not_a_regular_file(record.source_uri.rsplit("/", 1)[0] + "/" + name)


def save_record(record: ModelRecord, store_uri: str) -> None:
    uri = model_manifest_uri(store_uri, record.partition_key)
    get_store(uri).write_bytes(uri, record.model_dump_json(indent=2).encode(), "application/json")


class IntakeRecordMissing(FileNotFoundError):
    """No ``catalog/<model>.json`` in the store: the partition was registered but never taken in here."""


def missing_record(key: str, kind: str, problem: str) -> ModelRecord:
    """The failed record of a partition with no intake record (registered, but the upload never reached
    this store): ``failed_runtime`` naming the fix, so a batch or nightly run reports that one model and goes on
    with the others. Not saved: a later upload of the file writes the real record."""
    return ModelRecord(
        sha256="0" * 64, file_name=leaf_name(model_path(key)), name=model_path(key), kind=kind,
        mime_type="application/octet-stream", size_bytes=0, source_uri="", status=Status.FAILED_RUNTIME,
        findings=[ValidationMessage(severity=Severity.ERROR, code="INTAKE_RECORD_MISSING", text=problem)])


def load_record(store_uri: str, key: str) -> ModelRecord:
    """The record of the model's latest intake (schedules and backfills re-validate from the canonical copy)."""
    uri = model_manifest_uri(store_uri, key)
    try:
        return ModelRecord.model_validate_json(get_store(uri).read_bytes(uri))
    except FileNotFoundError:
        if is_legacy_key(key):
            raise IntakeRecordMissing(
                f"partition {key[:12]}… was registered by an older validibot, which keyed models by checksum; "
                "models are partitions by name now — run `validibot migrate` once to re-key this instance's "
                "models by name (see docs/operations.md)") from None
        raise IntakeRecordMissing(
            f"no intake record for model {model_path(key)} at {uri}; the model was never uploaded to this store "
            "— drop the file into the landing zone again"
        ) from None
