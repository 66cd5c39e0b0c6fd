"""The validation spec: what to simulate and which assertions must hold afterwards.

A spec is a small YAML file that travels next to the model as a sidecar named
``<model-file-name>.validation.yaml`` (``Model.fmu`` -> ``Model.fmu.validation.yaml``) or is passed
explicitly with ``--spec``::

    simulation: {start_time: 0, stop_time: 3, step_size: 0.01, tolerance: 1e-6}   # all optional
    inputs: {u: 3.0, k: 1.0}          # start values by native variable name
    outputs: [y]                      # optional; default: every causality=output variable
    weather: USA_IL_Chicago-OHare.Intl.AP.725300_TMY3.epw   # optional (EnergyPlus)
    input_timeseries: u_profile.csv   # optional (FMI): columns time,<input names>, uploaded next to the model
    reference: {file: lag_ref.csv, tolerance: 0.1}  # optional (FMI): a reference result CSV next to the model
    timestep_per_hour: 4              # optional, divides 60 (EnergyPlus)
    fail_on_severe: true              # optional (EnergyPlus): severe errors fail the run instead of warning
    quality: {sicn_min: 0.2, gamma_avg: 0.6}   # optional mesh quality targets (meshing)
    meshing: {max_elements: 200000, strategy_timeout_seconds: 60}   # optional meshing limits / strategies
    assertions:
      - name: settles_near_gain
        expr: "o.y > 5.5 && o.y < 6.1"
        severity: ERROR               # INFO / WARNING / ERROR, case-insensitive, default ERROR
        message: "y should settle near k*u"

Design choices, and why:

* Unknown keys are rejected everywhere (``extra="forbid"``) and duplicate YAML keys are an error,
  because a misspelt ``stop_tme`` that is silently ignored produces a "passing" run that tested the
  wrong thing.
* YAML is read with a SafeLoader variant that resolves YAML 1.2 floats: plain PyYAML reads ``1e-6``
  (no dot) as the *string* ``"1e-6"``, which would reach an FMU input as text. Aliases (``*ref``) are
  refused because specs arrive from untrusted uploads and alias fan-out is a cheap way to make
  validation exponential.
* Every error message names the file, the line when we know it, the problem and where to read about
  the fix; :class:`SpecError` is a :class:`ValueError` so CLI code can treat it like any bad input.
* Assertion names follow Dagster's asset-check name rule (``[A-Za-z0-9_]+``) so each assertion can
  become an asset check without renaming.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.validators import REGISTERED, spec_module

__all__ = [
    "MAX_EXPR_CHARS",
    "MAX_SPEC_BYTES",
    "KEYS_BY_KIND",
    "SPEC_SUFFIX",
    "Assertion",
    "SpecError",
    "ValidationSpec",
    "load_spec",
    "load_spec_file",
    "sidecar_path",
]

MAX_EXPR_CHARS = 2000
"""Longest accepted assertion expression; CEL evaluation cost grows with size, and nobody writes more."""

MAX_SPEC_BYTES = 1024 * 1024
"""Specs are hand-written; anything bigger than this is a mistake or an attack."""

SPEC_SUFFIX = ".validation.yaml"

_FIX_HINT = "see docs/usage.md 'Validation specs' for the format"

class SpecError(ValueError):
    """A validation spec could not be read; the message names the file, the problem and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Assertion(_Strict):
    """One CEL expression that must evaluate to ``true`` after the run (see :mod:`validibot_pipelines.assertions`)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_]+$")
    expr: str = Field(min_length=1, max_length=MAX_EXPR_CHARS)
    severity: Severity = Severity.ERROR
    message: str | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_any_case(cls, value: Any) -> Any:
        # People write "error" or "Warning"; the enum values are upper case.
        return value.strip().upper() if isinstance(value, str) else value


class _CommonSpec(_Strict):
    """The keys every validator reads; each validator adds its own (``validators/<name>/spec.py``)."""

    inputs: dict[str, float | int | bool | str] = Field(default_factory=dict)
    outputs: list[str] | None = None
    assertions: list[Assertion] = Field(default_factory=list)

    @field_validator("outputs")
    @classmethod
    def _outputs_named(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            empty = [i for i, name in enumerate(value) if not name.strip()]
            if empty:
                raise ValueError(f"output names must not be empty (entries {empty})")
        return value

    @field_validator("assertions")
    @classmethod
    def _unique_names(cls, value: list[Assertion]) -> list[Assertion]:
        # Results are reported (and become asset checks) by name, so two with one name would collide.
        first: dict[str, int] = {}
        for index, assertion in enumerate(value):
            if assertion.name in first:
                raise ValueError(
                    f"duplicate assertion name {assertion.name!r} (entries {first[assertion.name]} and {index});"
                    " names must be unique"
                )
            first[assertion.name] = index
        return value

    def to_yaml(self) -> str:
        """Serialise to the same YAML format :func:`load_spec` reads (empty blocks left out)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data = {key: value for key, value in data.items() if value not in ({}, [])}
        for assertion in data.get("assertions", []):
            if assertion.get("severity") == Severity.ERROR.value:
                del assertion["severity"]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if data else ""


def _validator_fields() -> dict[str, tuple[Any, Any]]:
    fields: dict[str, tuple[Any, Any]] = {}
    for name in REGISTERED:
        own = spec_module(name).SPEC_FIELDS
        shared = (fields.keys() | _CommonSpec.model_fields.keys()) & own.keys()
        if shared:  # two validators reading one key differently would silently take the last one's meaning
            raise ValueError(f"validators/{name}/spec.py redefines spec keys {sorted(shared)}; rename them")
        fields.update(own)
    return fields


ValidationSpec = create_model("ValidationSpec", __base__=_CommonSpec, __module__=__name__, **_validator_fields())
ValidationSpec.__doc__ = """Everything a user can say about how to validate one model; every field is optional.
The common keys plus every registered validator's own (a model's spec may use only its validator's keys)."""


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar spec for ``model_path`` lives: ``<model-file-name>.validation.yaml`` beside it."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + SPEC_SUFFIX)


def load_spec_file(path: str | Path) -> ValidationSpec:
    """Read and parse a spec file; a missing or unreadable file is a :class:`SpecError`, not an ``OSError``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read validation spec ({exc.strerror or exc}); {_FIX_HINT}") from None
    return load_spec(raw, str(path))


def load_spec(text: str | bytes | None, source: str, kind: str | None = None) -> ValidationSpec:
    """Parse spec YAML; ``source`` (usually the file name) is quoted in every error message.

    With ``kind`` (the model's validator, e.g. ``fmi``) a key of another validator is
    refused naming the keys this one reads (see :data:`KEYS_BY_KIND`). An empty document (or ``None``) is an
    empty spec: "simulate with the model's defaults and assert nothing" is a legitimate request.
    """
    if text is None:
        return ValidationSpec()
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: validation spec is {len(text)} bytes, the limit is {MAX_SPEC_BYTES}; {_FIX_HINT}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"{source}: validation spec is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
            ) from None

    loader = _SpecLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise SpecError(f"{source}: {_describe_yaml_error(exc)}; fix the YAML syntax ({_FIX_HINT})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}; {_FIX_HINT}") from None
    finally:
        loader.dispose()

    if data is None:
        return ValidationSpec()
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the top level must be a mapping of keys such as 'simulation' and 'assertions', "
            f"got {_yaml_type(data)}; {_FIX_HINT}"
        )
    problems = [*_foreign_keys(data, kind, loader.lines), *_non_finite(data, (), loader.lines)]
    spec: ValidationSpec | None = None
    try:
        spec = ValidationSpec.model_validate(data)
    except ValidationError as exc:
        errors = _collapse_union_errors(exc.errors())
        if kind in KEYS_BY_KIND:  # top-level unknown keys were worded above, against this validator's keys
            errors = [e for e in errors if not (e["type"] == "extra_forbidden" and len(e["loc"]) == 1)]
        problems += [_describe_pydantic_error(err, data, loader.lines) for err in errors]
    if problems:
        plural = "s" if len(problems) > 1 else ""
        listing = "\n".join(f"  - {p}" for p in problems)
        raise SpecError(
            f"{source}: invalid validation spec ({len(problems)} problem{plural}):\n{listing}\n{_FIX_HINT}"
        )
    assert spec is not None  # pydantic either built it or reported at least one problem
    return spec


# --- what a spec may say for each validator, and numbers that mean something --------------------------------

KEYS_BY_KIND: dict[str, tuple[str, ...]] = {name: spec_module(name).SPEC_KEYS for name in REGISTERED}
"""Top-level keys each validator reads. Why refuse the others: ``weather:`` in an FMU spec is read by nobody,
so a spec that looks like it configures something would silently configure nothing."""

_KIND_NAMES = {name: spec_module(name).TITLE for name in REGISTERED}
_MAX_PROBLEMS = 20  # a hostile spec with 10,000 bad numbers gets a readable message, not a 10,000-line one


def _foreign_keys(data: dict[Any, Any], kind: str | None, lines: dict[int, dict[Any, int]]) -> list[str]:
    allowed = KEYS_BY_KIND.get(kind or "")
    if allowed is None:
        return []
    problems = []
    for key in data:
        if key in allowed:
            continue
        line = lines.get(id(data), {}).get(key)
        prefix = f"line {line}: " if line else ""
        owners = [_KIND_NAMES[k] for k, keys in KEYS_BY_KIND.items() if key in keys]
        shown = str(key)[:80]
        if owners:
            why = f"'{shown}' is read for {' and '.join(owners)} models only, not for {_KIND_NAMES[kind]} models"
        else:
            guess = difflib.get_close_matches(str(key), allowed, n=1)
            why = f"unknown key '{shown}'" + (f" (did you mean {guess[0]!r}?)" if guess else "")
        problems.append(f"{prefix}{shown}: {why}; remove it (keys for {_KIND_NAMES[kind]} models: "
                        f"{', '.join(allowed)})")
    return problems[:_MAX_PROBLEMS]


def _non_finite(node: Any, loc: tuple[Any, ...], lines: dict[int, dict[Any, int]], root: Any = None) -> list[str]:
    """Every NaN or infinite number in the spec. Why: they pass ``> 0`` checks or compare false everywhere, so
    ``stop_time: .nan`` or ``strategy_timeout_seconds: .inf`` would quietly mean "default" or "never"."""
    root = node if root is None else root
    if isinstance(node, float) and not math.isfinite(node):
        line = _line_of(root, loc, lines)
        path = ".".join(str(p) for p in loc)
        return [f"{'line ' + str(line) + ': ' if line else ''}{path}: {node} is not a finite number (NaN and infinity "
                "mean nothing here); write a finite number, or leave the key out to use the default"]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    problems: list[str] = []
    for key, child in children:
        problems += _non_finite(child, (*loc, key), lines, root)
        if len(problems) >= _MAX_PROBLEMS:
            break
    return problems[:_MAX_PROBLEMS]


# --- YAML loading ------------------------------------------------------------------------------

# YAML 1.2 floats: exponent without a dot, optional signs; plus the usual .inf / .nan spellings.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 floats, no aliases, no duplicate keys, and a record of where each value sits.

    ``lines`` maps ``id(container)`` to ``{key or index: 1-based line}`` so pydantic errors (which only
    know a path such as ``assertions.2.severity``) can be reported with the line the user must edit.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[int, dict[Any, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in validation specs; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        # Mirrors SafeConstructor.construct_yaml_map, adding the duplicate-key check and recording the
        # key lines against the dict the caller gets back (not a temporary).
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, "keys must be plain scalars", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        data: dict[Any, Any] = {}
        self.lines[id(data)] = seen
        yield data
        data.update(self.construct_mapping(node))

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:
        data: list[Any] = []
        self.lines[id(data)] = {i: child.start_mark.line + 1 for i, child in enumerate(node.value)}
        yield data
        data.extend(self.construct_sequence(node))


_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
_SpecLoader.add_constructor("tag:yaml.org,2002:seq", _SpecLoader.construct_yaml_seq)
_SpecLoader.add_constructor("tag:yaml.org,2002:map", _SpecLoader.construct_yaml_map)


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = exc.problem or exc.context or "syntax error"
    context = ""
    if exc.context and exc.problem:
        # PyYAML notices an unclosed bracket where the next token is, so also say where it was opened.
        started = exc.context_mark
        at = f" that started at line {started.line + 1}, column {started.column + 1}" if started else ""
        context = f" ({exc.context}{at})"
    return f"invalid YAML at {where}: {problem}{context}"


def _yaml_type(value: Any) -> str:
    names = {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return "nothing (null)" if value is None else names.get(type(value), type(value).__name__)


def _line_of(data: Any, loc: tuple[int | str, ...], lines: dict[int, dict[Any, int]]) -> int | None:
    """The line of the deepest element of ``loc`` that exists in the parsed YAML."""
    line = None
    node = data
    for part in loc:
        table = lines.get(id(node), {})
        if isinstance(node, dict) and part in node:
            line, node = table.get(part, line), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line, node = table.get(part, line), node[part]
        else:
            break
    return line


def _value_at(data: Any, loc: tuple[int | str, ...], default: Any) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return default
    return node


def _allowed_keys(data: Any, loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = ValidationSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


_UNION_TAGS = {"float": "a number", "int": "a number", "bool": "true/false", "str": "text"}


def _collapse_union_errors(errors: list[Any]) -> list[Any]:
    """Turn pydantic's one-error-per-union-member (``inputs.u.float``, ``inputs.u.int``, ...) into one."""
    out: list[Any] = []
    for err in errors:
        loc = tuple(err["loc"])
        if loc and loc[-1] in _UNION_TAGS:
            previous = out[-1] if out else None
            if previous is not None and previous.get("_union_loc") == loc[:-1]:
                previous["_tags"].append(loc[-1])
                continue
            out.append({**err, "loc": loc[:-1], "type": "union", "_union_loc": loc[:-1], "_tags": [loc[-1]]})
        else:
            out.append(err)
    for err in out:
        if err.get("type") == "union":
            kinds = ", ".join(dict.fromkeys(_UNION_TAGS[t] for t in err["_tags"]))
            err["msg"] = f"must be one of: {kinds}; got {_yaml_type(err['input'])}"
    return out


def _describe_pydantic_error(err: Any, data: Any, lines: dict[int, dict[Any, int]]) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    path = ".".join(str(p) for p in loc) or "<top level>"
    msg = err["msg"]
    line_loc = loc
    duplicate = re.search(r"\(entries (\d+) and (\d+)\)", msg)
    if duplicate and loc == ("assertions",):
        line_loc = (*loc, int(duplicate.group(2)))  # point at the second, offending entry
    line = _line_of(data, line_loc, lines)
    prefix = f"line {line}: " if line else ""
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(data, loc)
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        msg = f"unknown key (allowed: {', '.join(allowed)}){hint}"
    elif err["type"] == "enum" and loc and loc[-1] == "severity":
        written = _value_at(data, loc, err["input"])  # err["input"] is already upper-cased
        msg = f"severity must be one of {', '.join(s.value for s in Severity)} (any case), got {written!r}"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{prefix}{path}: {msg}"
