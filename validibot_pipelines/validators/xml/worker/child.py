"""The throw-away, sandboxed process that parses the untrusted model and schema with lxml and validates.

libxml2 is native code reading bytes the user chose (the model *and* the schema), so it runs only here, inside
the sandbox (:mod:`validibot_pipelines.runtime.sandbox`), never in the trusted worker. Usage:
``python -m validibot_pipelines.validators.xml.worker.child SCRATCH`` with ``SCRATCH/request.json`` naming the
model, the schema folder and the main schema; writes ``SCRATCH/result.json``::

    {"well_formed": bool, "schema_ok": bool, "schema_error": str | None, "root_element": str | None,
     "namespace": str | None, "element_count": int, "error_count": int, "warning_count": int,
     "errors": [{"line", "column", "level", "message", "path"}], "truncated": bool}

Everything it writes is untrusted: the parent (:mod:`.validate`) reads it size-capped and checks it against a
schema before any of it reaches the output envelope. An unexpected exception is left to kill the process (exit
1, traceback on stderr), which the parent reports as a crash. No dagster, no validibot imports: stdlib and lxml.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

MAX_MESSAGE_CHARS = 500
MAX_SCHEMA_ERROR_CHARS = 2000
MAX_NAME_CHARS = 1000  # a root tag or namespace can be megabytes long; the parent refuses longer ones as forged
SCHEMA_ERRORS_SHOWN = 5


class SchemaReferenceRefused(Exception):
    """An ``xs:include``/``xs:import`` (or any other load) asked for something outside the schema folder."""


class SchemaFolderResolver(etree.Resolver):
    """Resolves only plain file names inside one folder; refuses URLs, other folders and ``..`` by raising.

    Why raise rather than return ``None``: ``None`` hands the URL to libxml2's default loader, which would read
    any file (or, without ``no_network``, any URL). libxml2 passes the location already joined with the base of
    the including schema, so ``schemaLocation="types.xsd"`` arrives as ``<folder>/types.xsd``. ``folder=None``
    refuses everything (the model's parser: a model has nothing to load).
    """

    def __init__(self, folder: Path | None) -> None:
        super().__init__()
        self.folder = Path(os.path.realpath(folder)) if folder is not None else None
        self.refused: list[str] = []

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        target = self.local_file(url)
        if target is None:
            self.refused.append(str(url))
            raise SchemaReferenceRefused(str(url))
        return self.resolve_filename(str(target), context)

    def local_file(self, url: str | None) -> Path | None:
        """The file in the folder ``url`` names, or ``None`` when it names anything else."""
        if not url or self.folder is None or "\x00" in url:
            return None
        parts = urlsplit(url)
        if parts.scheme == "file" and parts.netloc in ("", "localhost"):
            path = unquote(parts.path)
        elif parts.scheme:  # http, https, ftp, ...: never fetched
            return None
        else:
            path = url
        candidate = Path(path)
        if not candidate.is_absolute():
            if "/" in path or "\\" in path:
                return None
            candidate = self.folder / path
        if ".." in candidate.parts:
            return None
        real = Path(os.path.realpath(candidate))
        return real if real.parent == self.folder and real.is_file() else None


def parser(resolver: etree.Resolver) -> etree.XMLParser:
    """A parser that loads nothing by itself: no DTD, no entity substitution, no network.

    ``huge_tree``: intake accepted the document within its own caps (size, depth, elements); libxml2's extra
    10 MB text-node limit would call such a well-formed model "not well-formed", and the sandbox's memory and CPU
    limits bound what a big document costs here.
    """
    made = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=True)
    made.resolvers.add(resolver)
    return made


def validate(model: Path, schema_dir: Path, schema_name: str, max_findings: int) -> dict[str, Any]:
    """Parse the model and the schema, then validate; every outcome is a result, never an exception."""
    result: dict[str, Any] = {"well_formed": False, "schema_ok": False, "schema_error": None, "root_element": None,
                              "namespace": None, "element_count": 0, "error_count": 0, "warning_count": 0,
                              "errors": [], "truncated": False}
    model_parser = parser(SchemaFolderResolver(None))
    doc = None
    try:
        with open(model, "rb") as fh:
            doc = etree.parse(fh, model_parser)
    except etree.XMLSyntaxError as exc:
        _add_findings(result, model_parser.error_log or [_Entry(exc)], max_findings)
    except (OSError, etree.Error) as exc:  # e.g. an encoding name Python knows and libxml2 does not
        _add_findings(result, [_Entry(exc)], max_findings)
    if doc is not None:
        root = doc.getroot()
        name = etree.QName(root)
        result.update(well_formed=True, root_element=_clip(name.localname, MAX_NAME_CHARS),
                      namespace=_clip(name.namespace, MAX_NAME_CHARS) if name.namespace else None,
                      element_count=sum(1 for _ in root.iter(etree.Element)))
    schema, result["schema_error"] = load_schema(schema_dir, schema_name)
    result["schema_ok"] = schema is not None
    if doc is not None and schema is not None:
        schema.validate(doc)
        _add_findings(result, schema.error_log, max_findings)
    return result


def load_schema(schema_dir: Path, schema_name: str) -> tuple[etree.XMLSchema | None, str | None]:
    """The compiled schema, or ``None`` and why it cannot be used (libxml2's words, refused references first)."""
    main = schema_dir / schema_name
    resolver = SchemaFolderResolver(schema_dir)
    schema_parser = parser(resolver)
    try:
        with open(main, "rb") as fh:
            schema_doc = etree.parse(fh, schema_parser, base_url=str(main))
        return etree.XMLSchema(schema_doc), None
    except etree.XMLSyntaxError as exc:
        detail = _log_text(schema_parser.error_log) or str(exc)
        return None, _clip(_relative(f"not well-formed XML: {detail}", schema_dir), MAX_SCHEMA_ERROR_CHARS)
    except OSError as exc:  # e.g. an encoding name Python knows and libxml2 does not
        return None, _clip(_relative(f"not readable XML: {exc}; save it as UTF-8", schema_dir),
                           MAX_SCHEMA_ERROR_CHARS)
    except (etree.XMLSchemaParseError, SchemaReferenceRefused) as exc:
        log = getattr(exc, "error_log", None)
        detail = _log_text(log) if log is not None else ""
        refused = ""
        if resolver.refused:
            names = ", ".join(f"'{_clip(url, 200)}'" for url in dict.fromkeys(resolver.refused))
            refused = (f"it refers to {names}, which the validator does not load: only schema files uploaded with "
                       f"the model, named by plain file name (schemaLocation=\"types.xsd\"), are read — no URLs, "
                       f"no folders, no '..'; ")
        return None, _clip(_relative(f"{refused}{detail or exc}", schema_dir), MAX_SCHEMA_ERROR_CHARS)


def _add_findings(result: dict[str, Any], log: Iterable[Any], max_findings: int) -> None:
    for entry in log:
        level = "warning" if entry.level_name == "WARNING" else "error"
        result[f"{level}_count"] += 1
        if len(result["errors"]) >= max_findings:
            result["truncated"] = True
            continue
        result["errors"].append({"line": max(0, entry.line or 0), "column": max(0, entry.column or 0),
                                 "level": level, "message": _clip(str(entry.message).strip(), MAX_MESSAGE_CHARS),
                                 "path": _clip(entry.path, MAX_MESSAGE_CHARS) if entry.path else None})


class _Entry:
    """An error-log entry made from an exception whose log came back empty (libxml2 always logs, but be safe)."""

    def __init__(self, exc: Exception) -> None:
        position = getattr(exc, "position", None)
        self.line, self.column = position if position else (0, 0)
        text = str(getattr(exc, "msg", None) or exc)
        self.level_name, self.path = "FATAL", None
        if isinstance(exc, OSError):  # libxml2's "Error reading file '<sandbox path>': why": keep the why only
            why = text.rsplit("': ", 1)[-1]
            text = (f"{why} (libxml2 could not read the document: declare a standard encoding name such as UTF-8, "
                    "ISO-8859-1 or windows-1252, or save it as UTF-8)")
        self.message = text


def _log_text(log: Iterable[Any]) -> str:
    """The first few libxml2 errors as ``file line N: message``, for the schema error sentence."""
    parts = []
    for entry in list(log)[:SCHEMA_ERRORS_SHOWN]:
        where = Path(entry.filename).name if entry.filename and entry.filename != "<string>" else "schema"
        parts.append(f"{where} line {entry.line}: {str(entry.message).strip()}")
    return "; ".join(parts)


def _relative(text: str, schema_dir: Path) -> str:
    """``text`` with the sandbox's folders written relative to the schema folder, as the user wrote them
    (``../model.xml``, not ``/tmp/validibot-x1y2/xml-sandbox/model.xml``)."""
    for folder in dict.fromkeys([str(schema_dir), os.path.realpath(schema_dir)]):
        text = text.replace(f"file://{folder}/", "").replace(f"{folder}/", "")
        parent = os.path.dirname(folder)
        text = text.replace(f"file://{parent}/", "../").replace(f"{parent}/", "../")
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


def main(argv: list[str] | None = None) -> int:
    scratch = Path((sys.argv[1:] if argv is None else argv)[0])
    request = json.loads((scratch / "request.json").read_text())
    result = validate(scratch / request["model"], scratch / request["schema_dir"], request["schema"],
                      int(request["max_findings"]))
    (scratch / "result.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
