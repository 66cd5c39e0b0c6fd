"""The XSD an XML model is validated against, found at intake: named by the spec or ``<stem>.xsd`` beside it.

Each uploaded schema is checked like an upload (size cap, no DTD or entities, an ``xs:schema`` root, no
``xs:include``/``xs:import`` the worker would refuse), so a missing or hostile schema is a ``failed_validation``
naming the file before anything is launched. Built-in schemas (``xsd: fmi2`` / ``fmi3``) ship with the worker.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
from validibot_pipelines.orchestration.models import SPEC_SUFFIX, ModelRecord, attach_upload, upload_problem
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.xml.envelopes import BUILTIN_SCHEMAS
from validibot_pipelines.validators.xml.intake import DEFAULT_XML_LIMITS, XmlLimits, check_schema_file

MIME_XSD = "application/xml"
SCHEMA_ROLE = "schema"


def schema_name(record: ModelRecord) -> str:
    """The spec's ``xsd:``, else ``<model stem>.xsd``."""
    return record.validation_spec().xsd or f"{Path(record.file_name).stem}.xsd"


def attach(record: ModelRecord, store_uri: str, limits: XmlLimits = DEFAULT_XML_LIMITS) -> None:
    """The spec's schema files, each checked under the deployment's XML size cap (``xml_max_bytes``)."""
    spec = record.validation_spec()
    main = schema_name(record)
    if spec.xsd in BUILTIN_SCHEMAS and not spec.xsd_includes:
        return
    for name in [main, *spec.xsd_includes]:
        if not attach_upload(record, store_uri, name, MIME_XSD, SCHEMA_ROLE):
            _refuse(record, "XML_SCHEMA_MISSING", f"{record.file_name}: the schema '{name}' " + (
                upload_problem(record, name) or (
                    f"was not uploaded next to the model; upload it to the landing zone beside {record.file_name}, "
                    f"or name an uploaded schema or a built-in one ({', '.join(BUILTIN_SCHEMAS)}) with `xsd:` in "
                    f"{record.file_name}{SPEC_SUFFIX}")))
            return
    for item in record.resources:
        if item.role == SCHEMA_ROLE:
            for problem in _check_stored(item.uri, item.name, limits.max_bytes):
                _refuse(record, problem.code, problem.text, problem.location)


def _check_stored(uri: str, name: str, max_bytes: int) -> list[ValidationMessage]:
    with tempfile.TemporaryDirectory(prefix="validibot-xsd-") as tmp:
        local = Path(tmp) / "schema.xsd"
        get_store(uri).download_file(uri, local)
        return check_schema_file(local, name, max_bytes)


def _refuse(record: ModelRecord, code: str, text: str, location: str | None = "validation spec") -> None:
    record.status = Status.FAILED_VALIDATION
    record.findings.append(ValidationMessage(severity=Severity.ERROR, code=code, text=text, location=location))
