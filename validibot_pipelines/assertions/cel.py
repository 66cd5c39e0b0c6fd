"""Evaluate a spec's CEL assertions against a run's inputs, outputs and probe facts.

Each expression sees three variables: ``i`` (inputs), ``o`` (outputs and metrics) and ``p`` (facts the
probe found in the model). Names that are not CEL identifiers use index syntax: ``o["der(x)"]``.

Numbers (the coercion rule)
    cel-python follows the CEL spec strictly: ``3 > 1.0`` is a "no matching overload" error, and so
    is ``size(o.values) == 3.0``. Engineering users do not think in int vs double, so:

    1. every number in the context (Python ``int``/``float``, numpy scalars) becomes a CEL ``double``,
       because model values are measurements and ``p.counts.outputs / p.counts.variables`` must not
       silently truncate to ``0`` — except where a double would not be exact: a value marked
       :class:`ExactInt` / :class:`ExactUint` (FMI 3 ``Int64`` / ``UInt64`` variables) and any integer
       beyond 2**53 become CEL ``int`` / ``uint``, so ``9007199254740993`` never equals ``...992``;
    2. literals in the expression keep their CEL type (``1`` is an int), so list indexing ``o.xs[0]``,
       ``size(...)`` and integer arithmetic between literals behave exactly as in CEL;
    3. whenever two *different* numeric types meet in ``== != < <= > >= + - * / %`` or ``in``, both
       sides are promoted to double (``o.y > 1``, ``1 < o.y``, ``size(o.xs) == p.n`` all work);
       list/map equality applies the same rule element by element. Comparisons involving an ``int`` or
       ``uint`` are exact instead (Python compares int with float exactly), and ``int`` with ``uint``
       arithmetic stays an exact integer;
    4. a double with a whole value may index a list (``o.xs[p.n - 1]``) and ``%`` on doubles is
       C ``fmod``. Booleans are never numbers.

    We chose operator overloading over rewriting integer literals into double literals in the source
    text because rewriting must re-lex CEL (string escapes, raw strings, ``1u``, ``0x10``), breaks
    ``o.xs[0]`` and ``size(x) == 3``, and shifts the columns quoted in error messages.

Errors
    Nothing raises: every problem becomes ``passed=False`` with ``error`` naming the assertion and,
    where known, the line/column. Unknown fields list the names that do exist. A non-boolean result is
    a failure ("expression must evaluate to true/false"). CEL's logical operators are commutative
    about errors, so ``o.missing > 1 || true`` is ``true``; that is the language, not a silent pass.

Limits and isolation
    Expressions are at most 2000 characters and the context at most 32 levels deep (deeper, or
    cyclic, context fails every assertion with one clear message instead of recursing). cel-python is
    pure Python, so a runaway expression (nested ``map`` over long lists) would pin a CPU for minutes.
    A thread cannot be stopped, and a SIGALRM timer only works on the main thread and only between
    bytecodes, so assertions are evaluated in one ``os.fork()``-ed child per call: compiled ASTs and
    the converted context are inherited for free, results stream back one JSON line per assertion,
    and the parent gives each assertion ``timeout_s`` of wall time before it SIGKILLs the child, marks
    that assertion as timed out and forks a fresh child for the rest. The child also isolates the
    caller from crashes (segfaults, ``RecursionError``) and from memory blow-ups: its address space is
    capped at what it inherited plus :data:`MEMORY_BUDGET_BYTES`. In a batch (``validibot validate`` of
    many files, a grouped or backfill step) the models' calls are gathered and share one child
    (:func:`evaluate_together`), each assertion still with its own context and time budget.

    Cost, measured on a 2-vCPU VM: ~6-8 ms per call from a small process (fork ~1 ms, the child's
    first evaluation ~4 ms because of copy-on-write faults, reaping ~1 ms) plus ~0.3 ms per extra
    assertion; ~70 ms per call when the parent holds ~600 MB (fork copies page tables). In-process
    evaluation would be ~0.2 ms per assertion, but assertions run once per validation run, after a
    simulation that takes seconds, so a hard bound is worth those milliseconds. Platforms without ``fork``
    (Windows) evaluate in-process and cannot enforce the timeout.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import json
import math
import numbers
import operator
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import Activation, CELEvalError, Evaluator, base_functions, operator_in
from pydantic import BaseModel

from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.spec import MAX_EXPR_CHARS, Assertion

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_CONTEXT_DEPTH",
    "MAX_EXPR_CHARS",
    "AssertionResult",
    "evaluate_assertions",
    "evaluate_together",
    "gathered",
    "warm_up",
]

DEFAULT_TIMEOUT_S = 2.0
MAX_CONTEXT_DEPTH = 32
NAMESPACES = {"i": "inputs", "o": "outputs", "p": "probe facts"}

MEMORY_BUDGET_BYTES = 1 << 30
"""Extra address space an evaluating child may allocate beyond what it inherited."""
_MAX_VALUE_CHARS = 4000  # a non-boolean result is reported, but a 1e6-element list is not worth keeping
_MAX_LISTED_NAMES = 25
_RECURSION_LIMIT = 2500  # what celpy.Environment asks for; deep expressions need it


class AssertionResult(BaseModel):
    """Outcome of one assertion; ``error`` is set when the expression could not be evaluated at all."""

    name: str
    expr: str
    severity: Severity
    message: str | None = None
    passed: bool
    error: str | None = None
    value: Any = None


# --- public entry point ------------------------------------------------------------------------


def evaluate_assertions(
    assertions: Sequence[Assertion],
    *,
    inputs: Mapping[str, Any] | None,
    outputs: Mapping[str, Any] | None,
    probe: Mapping[str, Any] | BaseModel | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[AssertionResult]:
    """Evaluate every assertion against ``i``/``o``/``p``; one result per assertion, in order, never raising.

    ``timeout_s`` is the wall-clock budget of each assertion (not of the whole call), so one runaway
    expression cannot starve the others.
    """
    timeout_s = timeout_s if timeout_s > 0 else DEFAULT_TIMEOUT_S  # also catches NaN
    outcomes: list[dict[str, Any] | None] = [None] * len(assertions)
    try:
        context = {
            "i": _to_cel(inputs or {}, "i", 1),
            "o": _to_cel(outputs or {}, "o", 1),
            "p": _to_cel(probe or {}, "p", 1),
        }
    except Exception as exc:  # _ContextError, or a caller's Mapping that fails while being read
        problem = exc if isinstance(exc, _ContextError) else f"cannot read the context ({type(exc).__name__}: {exc})"
        return [_result(a, _failure(f"assertion {a.name!r}: cannot evaluate: {problem}")) for a in assertions]

    jobs: list[_Job] = []
    for index, assertion in enumerate(assertions):
        expr = assertion.expr
        if len(expr) > MAX_EXPR_CHARS:
            outcomes[index] = _failure(
                f"assertion {assertion.name!r}: expression is {len(expr)} characters, the limit is {MAX_EXPR_CHARS};"
                " split it into several assertions"
            )
            continue
        try:
            ast = _compile(expr)
        except celpy.CELParseError as exc:
            outcomes[index] = _failure(f"assertion {assertion.name!r}: {_describe_parse_error(exc)}")
            continue
        except Exception as exc:  # lark can raise odd errors on odd input; never let them escape
            outcomes[index] = _failure(f"assertion {assertion.name!r}: cannot parse expression: {exc}")
            continue
        jobs.append(_Job(index, assertion.name, expr, ast, context, timeout_s))

    if jobs:
        evaluate = _GATHER.get() or _evaluate_jobs
        try:
            evaluated = evaluate(jobs)
        except Exception as exc:  # a batch's evaluation could not run at all: every assertion says so
            evaluated = {job.index: _failure(f"assertion {job.name!r}: cannot evaluate: {exc}") for job in jobs}
        for index, outcome in evaluated.items():
            outcomes[index] = outcome
    return [
        _result(a, o or _failure(f"assertion {a.name!r}: not evaluated"))
        for a, o in zip(assertions, outcomes, strict=True)
    ]


def _result(assertion: Assertion, outcome: dict[str, Any]) -> AssertionResult:
    return AssertionResult(
        name=assertion.name,
        expr=assertion.expr,
        severity=assertion.severity,
        message=assertion.message,
        passed=bool(outcome.get("passed")),
        error=outcome.get("error"),
        value=outcome.get("value"),
    )


def _failure(error: str) -> dict[str, Any]:
    return {"passed": False, "error": error, "value": None}


# --- context conversion ------------------------------------------------------------------------


class ExactInt(int):
    """An integer that must stay exact in CEL (a 64-bit FMI variable): bound as CEL ``int``."""


class ExactUint(int):
    """An unsigned integer that must stay exact in CEL (an FMI ``UInt64``): bound as CEL ``uint``."""


DOUBLE_EXACT = 2**53
INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1


def _exact_integer(value: int) -> Any:
    """CEL int/uint for a value a double cannot hold exactly (or one marked so); None: a double will do."""
    if isinstance(value, ExactUint) and 0 <= value <= UINT64_MAX:
        return celtypes.UintType(int(value))
    if isinstance(value, ExactInt) or abs(value) > DOUBLE_EXACT:
        if INT64[0] <= value <= INT64[1]:
            return celtypes.IntType(int(value))
        if 0 <= value <= UINT64_MAX:
            return celtypes.UintType(int(value))
    return None


class _ContextError(ValueError):
    """The context cannot be given to CEL (too deep, cyclic or an unsupported value type)."""


def _to_cel(value: Any, path: str, depth: int) -> Any:
    """Convert plain Python data to CEL values, numbers to double (rule 1 in the module docstring)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return _to_cel(value.item(), path, depth)
    if isinstance(value, numbers.Integral) and (exact := _exact_integer(int(value) if not isinstance(
            value, ExactInt | ExactUint) else value)) is not None:
        return exact
    if isinstance(value, numbers.Real):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bytes | bytearray):
        return celtypes.BytesType(bytes(value))
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, Mapping | list | tuple) or hasattr(value, "tolist"):
        if depth > MAX_CONTEXT_DEPTH:
            raise _ContextError(
                f"context is nested more than {MAX_CONTEXT_DEPTH} levels deep at {_short(path)} (or is cyclic);"
                " flatten the inputs/outputs/probe data"
            )
        if isinstance(value, Mapping):
            return celtypes.MapType(
                {celtypes.StringType(str(k)): _to_cel(v, _join(path, str(k)), depth + 1) for k, v in value.items()}
            )
        items = value.tolist() if hasattr(value, "tolist") else value
        return celtypes.ListType([_to_cel(v, f"{path}[{n}]", depth + 1) for n, v in enumerate(items)])
    raise _ContextError(f"{_short(path)} has unsupported type {type(value).__name__}; pass JSON-like data")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{key!r}]"


def _short(path: str, limit: int = 120) -> str:
    return path if len(path) <= limit else path[: limit // 2] + "..." + path[-limit // 2 :]


# --- numeric promotion (rules 3 and 4) ---------------------------------------------------------

_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


_INTEGERS = (celtypes.IntType, celtypes.UintType)


def _exact_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Plain Python numbers for an exact comparison when an int/uint meets another numeric type, else None."""
    if type(a) is type(b) or not (isinstance(a, (*_NUMBERS, float)) and isinstance(b, (*_NUMBERS, float))):
        return None
    if not (isinstance(a, _INTEGERS) or isinstance(b, _INTEGERS)):
        return None
    return tuple(int(x) if isinstance(x, _INTEGERS) else float(x) for x in (a, b))  # type: ignore[return-value]


def _integer(value: int) -> Any:
    if INT64[0] <= value <= INT64[1]:
        return celtypes.IntType(value)
    if 0 <= value <= UINT64_MAX:
        return celtypes.UintType(value)
    raise OverflowError("integer result outside the int64 and uint64 ranges")


def _promote(a: Any, b: Any) -> tuple[Any, Any]:
    # celpy's double arithmetic returns plain Python floats (1.5 + 1.0 is a float, not a DoubleType);
    # treat those as doubles so later comparisons and error messages stay in CEL terms.
    a = _as_double(a) if type(a) is float else a
    b = _as_double(b) if type(b) is float else b
    if type(a) is not type(b) and isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS):
        return _as_double(a), _as_double(b)
    return a, b


def _as_double(value: Any) -> celtypes.DoubleType:
    return value if isinstance(value, celtypes.DoubleType) else celtypes.DoubleType(float(value))


def _equal(a: Any, b: Any) -> bool:
    """CEL equality with numeric promotion, also inside lists and maps. Raises TypeError on a type mismatch."""
    if a is None or b is None:
        return a is None and b is None  # CEL: x == null is simply false for any non-null x
    if isinstance(a, celtypes.ListType) and isinstance(b, celtypes.ListType):
        return len(a) == len(b) and all(_loose_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, celtypes.MapType) and isinstance(b, celtypes.MapType):
        return a.keys() == b.keys() and all(_loose_equal(a[k], b[k]) for k in a)
    if isinstance(a, celtypes.BoolType) != isinstance(b, celtypes.BoolType):
        raise TypeError("booleans are not numbers")  # Python would say True == 1
    exact = _exact_pair(a, b)
    if exact is not None:
        return exact[0] == exact[1]
    a, b = _promote(a, b)
    return bool(a == b)


def _loose_equal(a: Any, b: Any) -> bool:
    # Inside containers CEL (and celpy) treat a type mismatch as "not equal", not as an error.
    try:
        return _equal(a, b)
    except TypeError:
        return False


def _no_bool_arithmetic(a: Any, b: Any, mixed_only: bool = False) -> None:
    """Refuse a boolean meeting a number. Why: celpy's ``BoolType`` subclasses Python ``int``, so its stock
    operators compute ``o.y + true`` as ``o.y + 1`` and ``true < 2.0`` as ``1 < 2.0`` — a silent pass of an
    assertion that means nothing. ``mixed_only`` keeps bool-vs-bool ordering (``false < true``), which CEL has."""
    a_bool, b_bool = isinstance(a, bool | celtypes.BoolType), isinstance(b, bool | celtypes.BoolType)
    if (a_bool or b_bool) and not (mixed_only and a_bool and b_bool):
        raise TypeError("booleans are not numbers (no arithmetic or ordering between a bool and a number)")


def _comparison(base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def compare(a: Any, b: Any) -> Any:
        _no_bool_arithmetic(a, b, mixed_only=True)
        exact = _exact_pair(a, b)
        if exact is not None:
            return celtypes.BoolType(base(*exact))
        return base(*_promote(a, b))

    compare.__name__ = getattr(base, "__name__", "compare")
    return compare


def _arithmetic(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        _no_bool_arithmetic(a, b)
        if isinstance(a, _INTEGERS) and isinstance(b, _INTEGERS) and type(a) is not type(b) \
                and op in (operator.add, operator.sub, operator.mul):
            return _integer(op(int(a), int(b)))  # int with uint: exact, not via double
        result = op(*_promote(a, b))
        return _as_double(result) if type(result) is float else result

    apply.__name__ = getattr(op, "__name__", "apply")
    return apply


def _eq(a: Any, b: Any) -> Any:
    for side in (a, b):
        if isinstance(side, CELEvalError):
            return side
    return celtypes.BoolType(_equal(a, b))


def _ne(a: Any, b: Any) -> Any:
    result = _eq(a, b)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(not result)


def _mod(a: Any, b: Any) -> Any:
    _no_bool_arithmetic(a, b)
    a, b = _promote(a, b)
    if isinstance(a, celtypes.DoubleType) and isinstance(b, celtypes.DoubleType):
        if float(b) == 0.0:
            raise ZeroDivisionError("modulus by zero")
        return celtypes.DoubleType(math.fmod(float(a), float(b)))
    return operator.mod(a, b)


def _logical(base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # celpy raises "no such overload" for error && error, burying the real cause; CEL says the result is an error.
    def combine(x: Any, y: Any) -> Any:
        if isinstance(x, CELEvalError) and isinstance(y, CELEvalError):
            return x
        return base(x, y)

    combine.__name__ = getattr(base, "__name__", "combine")
    return combine


def _in(item: Any, container: Any) -> Any:
    if isinstance(item, CELEvalError):
        return item
    if isinstance(container, celtypes.ListType):
        return celtypes.BoolType(any(_loose_equal(item, c) for c in container))
    return operator_in(item, container)


def _numeric_conversion(name: str) -> Callable[[Any], Any]:
    """``int()`` / ``uint()`` / ``double()`` without the bool overload celpy inherits from Python (CEL has none):
    ``double(o.flag) > 0.5`` would otherwise turn a boolean into a number behind the rule above."""
    base = base_functions[name]

    def convert(value: Any) -> Any:
        if isinstance(value, bool | celtypes.BoolType):
            raise TypeError(f"{name}() does not accept a bool; compare the bool directly (o.flag == true)")
        return base(value)

    convert.__name__ = name
    return convert


_FUNCTIONS: dict[str, Any] = {
    **{name: _numeric_conversion(name) for name in ("int", "uint", "double")},
    "_<_": _comparison(base_functions["_<_"]),
    "_<=_": _comparison(base_functions["_<=_"]),
    "_>_": _comparison(base_functions["_>_"]),
    "_>=_": _comparison(base_functions["_>=_"]),
    "_==_": _eq,
    "_!=_": _ne,
    "_+_": _arithmetic(operator.add),
    "_-_": _arithmetic(operator.sub),
    "_*_": _arithmetic(operator.mul),
    "_/_": _arithmetic(operator.truediv),
    "_%_": _mod,
    "_in_": _in,
    "_&&_": _logical(celtypes.logical_and),
    "_||_": _logical(celtypes.logical_or),
}
_MACROS = {"has", "dyn", "map", "filter", "all", "exists", "exists_one", "reduce"}


# --- evaluator with readable errors ------------------------------------------------------------


class _Evaluator(Evaluator):
    """celpy's interpreter, with errors that say which name is missing and what exists instead.

    The stock messages embed ``repr(activation)`` (the whole context, possibly megabytes) or say only
    "no such member in mapping"; users need the path they wrote and the alternatives.
    """

    def __init__(self, ast: lark.Tree, activation: Activation, source: str, raised: list[CELEvalError]) -> None:
        super().__init__(ast, activation)
        self.source = source
        self.raised = raised  # shared with sub-evaluators: the first error we made is the likely root cause

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:
        return _Evaluator(ast, self.activation, self.source, self.raised)

    def _error(self, message: str, kind: type[Exception], **where: Any) -> CELEvalError:
        return CELEvalError(message, kind, None, **where)

    def visit(self, tree: lark.Tree) -> Any:
        result = super().visit(tree)
        self._remember(result)
        return result

    def visit_children(self, tree: lark.Tree) -> list[Any]:
        results = super().visit_children(tree)
        for result in results:
            self._remember(result)
        return results

    def _remember(self, result: Any) -> None:
        # Keep the first few errors as they are made: celpy later folds "error && error" inside macros
        # into one "no such overload" whose text is a pile of reprs, and we want to report the cause.
        if isinstance(result, CELEvalError) and len(self.raised) < 20 and all(result is not e for e in self.raised):
            self.raised.append(result)

    def _text(self, tree: Any) -> str:
        meta = getattr(tree, "meta", None)
        if meta is not None and not getattr(meta, "empty", True):
            return " ".join(self.source[meta.start_pos : meta.end_pos].split()) or "value"
        return "value"

    def primary(self, tree: lark.Tree) -> Any:
        child = tree.children[0] if len(tree.children) == 1 else None
        if isinstance(child, lark.Tree) and child.data in ("ident", "ident_arg"):
            token = child.children[0]
            name = str(token)
            if child.data == "ident":
                try:
                    return self.ident_value(name)
                except KeyError:
                    return self._error(self._unknown_name(name), KeyError, tree=tree)
            if name not in _MACROS and name not in self.activation.functions:
                return self._error(f"unknown function {name!r}", KeyError, tree=tree)
        return super().primary(tree)

    def method_eval(self, object: Any, method_ident: lark.Token, exprlist: Any = None) -> Any:
        if method_ident.value not in self.activation.functions:
            return self._error(f"unknown function {method_ident.value!r}", KeyError, token=method_ident)
        return super().method_eval(object, method_ident, exprlist)

    def _unknown_name(self, name: str) -> str:
        names = ", ".join(f"{k} ({v})" for k, v in NAMESPACES.items())
        hints = []
        for ns in NAMESPACES:
            try:
                value = self.ident_value(ns)
            except KeyError:
                continue
            if isinstance(value, celtypes.MapType) and name in value:
                hints.append(f"{ns}.{name}")
        hint = f"; did you mean {' or '.join(hints)}?" if hints else ""
        return f"unknown name {name!r}; the variables are {names}{hint}"

    def member_dot(self, tree: lark.Tree) -> Any:
        member_tree, name_token = tree.children
        member = self.visit(member_tree)
        name = str(name_token)
        if isinstance(member, CELEvalError):
            return member
        if isinstance(member, celtypes.MapType):
            try:
                return member[celtypes.StringType(name)]
            except KeyError:
                return self._error(
                    _missing(self._text(member_tree), "field", name, member), KeyError, token=name_token
                )
        if isinstance(member, celtypes.MessageType) or type(member).__name__ == "NameContainer":
            return super().member_dot(tree)  # re-visits member_tree; only reachable for protobuf-style names
        return self._error(
            f"{self._text(member_tree)} is a {_cel_type(member)}, not a map; it has no field {name!r}",
            TypeError,
            token=name_token,
        )

    def member_index(self, tree: lark.Tree) -> Any:
        member, index = self.visit_children(tree)
        for value in (member, index):
            if isinstance(value, CELEvalError):
                return value
        where = self._text(tree.children[0])
        if isinstance(member, celtypes.ListType):
            if isinstance(index, float):
                if not index.is_integer():
                    return self._error(
                        f"list index must be a whole number, got {float(index)}", TypeError, tree=tree
                    )
                index = celtypes.IntType(int(index))
            if isinstance(index, celtypes.IntType | celtypes.UintType):
                if not 0 <= int(index) < len(member):
                    return self._error(
                        f"index {int(index)} is out of range for {where} (size {len(member)})", IndexError,
                        tree=tree,
                    )
                return member[int(index)]
        if isinstance(member, celtypes.MapType):
            candidates = [index]
            if isinstance(index, float) and index.is_integer():
                # a double key from the context may address an int/uint key written as a literal
                candidates += [celtypes.IntType(int(index))] + ([celtypes.UintType(int(index))] if index >= 0 else [])
            for key in candidates:
                try:
                    if key in member:
                        return member[key]
                except TypeError:  # equal hashes, incomparable CEL types
                    continue
            return self._error(_missing(where, "key", index, member), KeyError, tree=tree)
        try:
            return self.activation.resolve_function("_[_]")(member, index)
        except (TypeError, KeyError, IndexError) as exc:
            return self._error(
                f"cannot index {where} ({_cel_type(member)}) with {_cel_type(index)}: {exc}", type(exc), tree=tree
            )


def _missing(where: str, kind: str, name: Any, mapping: celtypes.MapType) -> str:
    keys = sorted(str(k) for k in mapping)
    if not keys:
        return f"{where} has no {kind} {str(name)!r}; {where} is empty"
    listed = ", ".join(keys[:_MAX_LISTED_NAMES]) + (f", ... ({len(keys) - _MAX_LISTED_NAMES} more)"
                                                     if len(keys) > _MAX_LISTED_NAMES else "")
    guess = difflib.get_close_matches(str(name), keys, n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"{where} has no {kind} {str(name)!r}{hint}; available: {listed}"


# --- compile and evaluate one expression -------------------------------------------------------

_ENVIRONMENT: celpy.Environment | None = None
_COMPILE_LOCK = threading.Lock()  # celpy's parser is a shared singleton that keeps per-parse state


def _environment() -> celpy.Environment:
    """The process's one CEL environment (its lark parser takes ~0.3 s to build: once per process)."""
    global _ENVIRONMENT
    with _COMPILE_LOCK:
        if _ENVIRONMENT is None:
            # celpy.Environment() raises the interpreter-wide recursion limit as a side effect; keep the
            # caller's process as it was (the evaluating child sets its own limit).
            limit = sys.getrecursionlimit()
            try:
                _ENVIRONMENT = celpy.Environment()
            finally:
                sys.setrecursionlimit(limit)
        return _ENVIRONMENT


def warm_up() -> None:
    """Build the CEL parser in a background thread, once per process.

    Why: every Dagster run (``dagster dev`` starts a process per run) and every ``validibot validate`` call would
    otherwise build it when its first assertion is evaluated — ~0.3 s on the path to the verdict. Called where the
    control plane is about to wait for a worker anyway, so the build overlaps the wait.
    """
    if _ENVIRONMENT is None:
        threading.Thread(target=_environment, name="validibot-cel-warm-up", daemon=True).start()


@functools.lru_cache(maxsize=512)
def _compile(expr: str) -> lark.Tree:
    """Parse once per distinct expression (ASTs are never mutated by evaluation, so caching is safe): a batch
    of models sharing a spec parses its assertions once."""
    environment = _environment()
    with _COMPILE_LOCK:
        return environment.compile(expr)


def _describe_parse_error(exc: celpy.CELParseError) -> str:
    where = f"line {exc.line}, column {exc.column}" if exc.line else "unknown position"
    cause = exc.__context__
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        if token.type == "$END":
            problem = "the expression ends too early (missing operand or closing bracket?)"
        else:
            problem = f"unexpected {str(token)!r}"
    elif isinstance(cause, lark.exceptions.UnexpectedCharacters):
        char = getattr(cause, "char", "?")
        problem = f"unexpected character {char!r}" + (" (unterminated string?)" if char in "'\"" else "")
    else:
        problem = str(exc.args[0]).splitlines()[0] if exc.args else "invalid syntax"
    pointer = str(exc.args[0]).rstrip("\n") if exc.args else ""
    return f"syntax error at {where}: {problem}\n{pointer}"


def _evaluate_one(ast: lark.Tree, source: str, name: str, context: dict[str, Any]) -> dict[str, Any]:
    """Run one compiled expression; returns the JSON-able outcome, never raises (except BaseException)."""
    raised: list[CELEvalError] = []
    try:
        assert _ENVIRONMENT is not None
        activation = Activation(annotations=_ENVIRONMENT.annotations, functions=_FUNCTIONS, package=None)
        value = _Evaluator(ast, activation, source, raised).evaluate(context)
    except CELEvalError as exc:
        text = _flatten(exc.args)
        if "CELEvalError" in text:  # a wrapper around earlier errors: report the first one it contains
            exc = next((e for e in raised if e.args and str(e.args[0]) in text), raised[0] if raised else exc)
        where = f" at line {exc.line}, column {exc.column}" if exc.line else ""
        return _failure(f"assertion {name!r}: evaluation error{where}: {_tidy(exc)}")
    except RecursionError:
        return _failure(f"assertion {name!r}: expression is nested too deeply to evaluate; simplify it")
    except MemoryError:
        return _failure(
            f"assertion {name!r}: evaluation ran out of memory"
            f" (limit: {MEMORY_BUDGET_BYTES >> 20} MiB beyond the caller)"
        )
    except Exception as exc:
        return _failure(f"assertion {name!r}: evaluation failed: {type(exc).__name__}: {exc}")
    if isinstance(value, celtypes.BoolType | bool):
        return {"passed": bool(value), "error": None, "value": bool(value)}
    plain = _plain(value)
    shown = json.dumps(plain, default=str)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    return {
        "passed": False,
        "error": f"assertion {name!r}: expression must evaluate to true/false, got {_cel_type(value)} {shown}",
        "value": plain,
    }


def _flatten(args: Any) -> str:
    if isinstance(args, tuple | list):
        return " ".join(_flatten(a) for a in args)
    return str(args)


def _tidy(exc: CELEvalError) -> str:
    message = str(exc.args[0]) if exc.args else "evaluation error"
    message = re.sub(r"<class 'celpy\.celtypes\.(\w+?)Type'>", lambda m: m.group(1).lower(), message)
    message = message.replace("<class 'NoneType'>", "null")
    ops = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "in": "in", "add": "+",
           "sub": "-", "mul": "*", "div": "/", "mod": "%"}
    message = re.sub(r"Token\('RULE', '\w+?_(\w+)'\)", lambda m: repr(ops.get(m.group(1), m.group(1))), message)
    if message in ("no such overload", "return error for overflow", "divide by zero") and len(exc.args) > 2:
        detail = exc.args[2]
        if detail:
            message += f" ({', '.join(str(d) for d in detail)})"
    return message


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    for cls in type(value).__mro__:
        if cls.__module__ == "celpy.celtypes" and cls.__name__.endswith("Type"):
            return cls.__name__[:-4].lower()
    return type(value).__name__


def _plain(value: Any, depth: int = 0) -> Any:
    """A CEL value as JSON-able Python data (bounded, because it ends up in reports)."""
    if depth > MAX_CONTEXT_DEPTH:
        return "..."
    if value is None or isinstance(value, celtypes.BoolType | bool):
        return None if value is None else bool(value)
    if isinstance(value, celtypes.DoubleType | float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:1000]]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in list(value.items())[:1000]}
    return str(value)


# --- isolation: one forked child per call (or per batch), per-assertion wall-clock limit --------


class _Job:
    """One assertion to evaluate: its compiled expression, the context it reads and its time budget."""

    __slots__ = ("index", "name", "source", "ast", "context", "timeout")

    def __init__(self, index: int, name: str, source: str, ast: lark.Tree, context: dict[str, Any],
                 timeout: float) -> None:
        self.index, self.name, self.source, self.ast = index, name, source, ast
        self.context, self.timeout = context, timeout


Evaluate = Callable[[list[_Job]], dict[int, dict[str, Any]]]
_GATHER: ContextVar[Evaluate | None] = ContextVar("validibot_cel_gather", default=None)


@contextlib.contextmanager
def gathered(evaluate: Evaluate) -> Iterator[None]:
    """In this thread, hand :func:`evaluate_assertions`' prepared assertions to ``evaluate`` (a batch's
    gatherer, ``orchestration/batching.py``), which evaluates many models' at once with
    :func:`evaluate_together`."""
    token = _GATHER.set(evaluate)
    try:
        yield
    finally:
        _GATHER.reset(token)


def evaluate_together(calls: list[list[_Job]]) -> list[dict[int, dict[str, Any]]]:
    """The assertions of several :func:`evaluate_assertions` calls (a batch's models) in one forked child.

    Why: a fork of the control plane costs ~5-8 ms (page tables, copy-on-write faults), more than evaluating
    a model's assertions; one child for a batch of 40 models saves most of it. The models' assertions run
    one after the other in that child, each with its own context and wall-time budget; a timeout or crash of
    one assertion ends that child and the rest continue in a fresh one, exactly as within one call. Returns,
    per call, its outcomes by its own job indices.
    """
    flat = [(call, job) for call, jobs in enumerate(calls) for job in jobs]
    numbered = [_Job(n, job.name, job.source, job.ast, job.context, job.timeout) for n, (_, job) in enumerate(flat)]
    outcomes = _evaluate_jobs(numbered) if numbered else {}
    results: list[dict[int, dict[str, Any]]] = [{} for _ in calls]
    for n, (call, job) in enumerate(flat):
        results[call][job.index] = outcomes[n]
    return results


def _evaluate_jobs(jobs: list[_Job]) -> dict[int, dict[str, Any]]:
    if not hasattr(os, "fork"):
        return {job.index: _evaluate_one(job.ast, job.source, job.name, job.context) for job in jobs}
    outcomes: dict[int, dict[str, Any]] = {}
    pending = list(jobs)
    while pending:  # each round finishes at least one job, so this terminates
        pending = _run_child(pending, outcomes)
    return outcomes


def _run_child(jobs: list[_Job], outcomes: dict[int, dict[str, Any]]) -> list[_Job]:
    """Evaluate ``jobs`` in a forked child; return the jobs still to do after a timeout or crash."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError as exc:
        for job in jobs:
            outcomes[job.index] = _failure(f"assertion {job.name!r}: cannot start the evaluator: {exc}")
        return []
    gc.freeze()  # the child's GC then ignores the parent's objects, so it does not copy their pages
    try:
        pid = os.fork()
    except OSError as exc:
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        for job in jobs:
            outcomes[job.index] = _failure(f"assertion {job.name!r}: cannot start the evaluator: {exc}")
        return []
    if pid == 0:  # child: never return into the caller's code
        code = 0
        try:
            # Keep only stdio and our pipe: inherited descriptors (sockets, other evaluators' pipes) must
            # not be held open by this child, or another call would miss its own child's EOF.
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, _max_fd())
            sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
            _limit_memory(MEMORY_BUDGET_BYTES)
            for job in jobs:
                outcome = _evaluate_one(job.ast, job.source, job.name, job.context)
                line = json.dumps({"index": job.index, **outcome}, default=str)
                if len(line) > _MAX_VALUE_CHARS * 2:
                    outcome["value"] = json.dumps(outcome["value"], default=str)[:_MAX_VALUE_CHARS] + "..."
                    line = json.dumps({"index": job.index, **outcome}, default=str)
                _write_all(write_fd, line.encode() + b"\n")
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    gc.unfreeze()
    os.close(write_fd)
    crashed: _Job | None = None
    try:
        rest, crashed = _collect(read_fd, jobs, outcomes)
    finally:
        os.close(read_fd)
        if crashed is None:
            _kill(pid)  # a no-op when the child already exited; stops it on timeout or KeyboardInterrupt
        status = _wait(pid)
    if crashed is not None:
        outcomes[crashed.index] = _failure(f"assertion {crashed.name!r}: evaluation crashed ({status})")
    return rest


def _limit_memory(budget: int) -> None:
    """Cap the child's address space at its current size + ``budget`` (best effort; Linux only).

    Within the time limit CEL can still build gigabytes (``o.xs.map(x, o.big + o.big)``); with the cap
    that is a MemoryError in the child rather than the OOM killer choosing a victim in the container.
    """
    try:
        import resource

        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + budget
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def _max_fd() -> int:
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 1024)
    except (ValueError, OSError):
        return 65536


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _collect(read_fd: int, jobs: list[_Job], outcomes: dict[int, dict[str, Any]]) -> tuple[list[_Job], _Job | None]:
    """Read one result line per job; returns (jobs left to do, the job the child died on)."""
    poller = select.poll()  # not select.select: it breaks on descriptors above 1024
    poller.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    buffer = b""
    for position, job in enumerate(jobs):
        timeout_s = job.timeout
        deadline = time.monotonic() + timeout_s
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcomes[job.index] = _failure(
                    f"assertion {job.name!r}: evaluation timed out after {timeout_s:g} s; the expression does too much"
                    " work (nested map/filter over long lists?)"
                )
                return jobs[position + 1 :], None
            if not poller.poll(math.ceil(remaining * 1000)):
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:  # EOF without a result: the child died (segfault, OOM killer, ...)
                return jobs[position + 1 :], job
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        try:
            outcome = json.loads(line)
            outcome.pop("index", None)
        except ValueError as exc:
            outcome = _failure(f"assertion {job.name!r}: unreadable evaluator output ({exc})")
        outcomes[job.index] = outcome
    return [], None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait(pid: int) -> str:
    """Reap the child (no zombies) and describe how it ended."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "evaluator process vanished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.WEXITSTATUS(status)}"
