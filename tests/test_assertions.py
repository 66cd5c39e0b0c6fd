"""CEL assertion evaluation: results, number coercion, readable errors, limits and the hard timeout."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from validibot_pipelines.assertions import AssertionResult, cel, evaluate_assertions
from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.spec import MAX_EXPR_CHARS, Assertion

INPUTS = {"u": 3.0, "k": 1}
OUTPUTS = {"y": 5.9, "xs": [1, 2, 3], "der(x)": 0.5, "label": "steady", "ok": True, "missing_value": None}
PROBE = {"counts": {"outputs": 1, "inputs": 2}, "n": 3, "model_name": "Feedthrough", "variables": [{"name": "u"}]}

# Grows as 100**3 element evaluations: minutes of pure-Python work for cel-python.
_HUNDRED = "[" + ",".join(str(n) for n in range(100)) + "]"
RUNAWAY = f"{_HUNDRED}.map(a, {_HUNDRED}.map(b, {_HUNDRED}.map(c, a + b + c))).size() > 0"


def run(*exprs: str, timeout_s: float = 2.0, **context: Any) -> list[AssertionResult]:
    assertions = [Assertion(name=f"a{n}", expr=expr) for n, expr in enumerate(exprs)]
    return evaluate_assertions(
        assertions,
        inputs=context.get("inputs", INPUTS),
        outputs=context.get("outputs", OUTPUTS),
        probe=context.get("probe", PROBE),
        timeout_s=timeout_s,
    )


def one(expr: str, **context: Any) -> AssertionResult:
    (result,) = run(expr, **context)
    return result


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """PIDs of the evaluator children forked during the test (parent side only)."""
    pids: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    return pids


def assert_reaped(pids: list[int]) -> None:
    """Every evaluator child must be gone and reaped (killed first after a timeout): no zombies, no CPU burn."""
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


# --- pass / fail -------------------------------------------------------------------------------


def test_passing_assertion() -> None:
    result = one("o.y > 5.5 && o.y < 6.1")
    assert result.passed is True and result.error is None and result.value is True


def test_failing_assertion_is_not_an_error() -> None:
    result = one("o.y > 100.0")
    assert result.passed is False and result.error is None and result.value is False


def test_namespaces_i_o_p_are_bound() -> None:
    assert [r.passed for r in run("i.u * i.k == 3.0", "o.label == 'steady'", "p.model_name.startsWith('Feed')")] == [
        True,
        True,
        True,
    ]


def test_result_carries_assertion_metadata_and_is_json() -> None:
    assertion = Assertion(name="gain", expr="o.y > 1", severity="warning", message="y too small")
    (result,) = evaluate_assertions([assertion], inputs={}, outputs={"y": 2}, probe={})
    assert (result.name, result.expr, result.severity, result.message) == ("gain", "o.y > 1", Severity.WARNING,
                                                                          "y too small")
    assert json.loads(result.model_dump_json())["severity"] == "WARNING"


def test_severity_defaults_to_error_and_parses_any_case() -> None:
    assert Assertion(name="a", expr="true").severity is Severity.ERROR
    assert Assertion(name="a", expr="true", severity="info").severity is Severity.INFO
    with pytest.raises(ValueError, match="severity"):
        Assertion(name="a", expr="true", severity="fatal")


def test_results_keep_order_and_count() -> None:
    results = run("o.y > 1", "o.nope > 1", "o.y <", "o.y < 1")
    assert [r.name for r in results] == ["a0", "a1", "a2", "a3"]
    assert [r.passed for r in results] == [True, False, False, False]
    assert [r.error is None for r in results] == [True, False, False, True]
    assert evaluate_assertions([], inputs={}, outputs={}, probe={}) == []


def test_pydantic_models_and_tuples_are_accepted_as_context() -> None:
    class Probe(BaseModel):
        fmi_version: str
        counts: dict[str, int]

    probe = Probe(fmi_version="2.0", counts={"outputs": 1})
    result = one("p.fmi_version == '2.0' && p.counts.outputs == 1 && o.pair[1] == 2", probe=probe,
                 outputs={"pair": (1, 2)})
    assert result.passed, result.error


def test_index_syntax_reaches_names_that_are_not_identifiers() -> None:
    assert one("o['der(x)'] == 0.5").passed


# --- int / double coercion ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "o.y > 1",  # double vs int literal
        "o.y > 1.0",  # double vs double literal
        "1 < o.y",  # int literal on the left: cel-python alone raises here
        "p.counts.outputs == 1",  # context int became double; compares equal to int literal
        "p.counts.outputs == 1.0",
        "p.counts.outputs != 2",
        "size(o.xs) == 3",  # size() returns int
        "size(o.xs) > 2.0",  # int vs double literal
        "size(o.xs) == p.n",  # int vs context double
        "o.xs[0] == 1",  # int literal still indexes lists
        "o.xs[p.n - 1] == 3",  # whole-valued double indexes too
        "o.xs == [1, 2, 3]",  # element-wise promotion
        "2 in o.xs",
        "o.xs.exists(x, x == 2)",
        "o.xs.all(x, x >= 1)",
        "o.xs.map(x, x * 2)[2] == 6",
        "p.counts.outputs / p.counts.inputs == 0.5",  # context numbers divide as doubles, no truncation
        "7 / 2 == 3",  # two int literals keep CEL integer division
        "p.n % 2 == 1",
        "o.y - 1 > 4",
        "4 < o.y - 1",
        "o.y + size(o.xs) > 8",
        "int(o.y) == 5",
        "1u < o.y",
        "o.label == '1' || o.label == 'steady'",  # digits inside strings are untouched
    ],
)
def test_numbers_mix_as_users_expect(expr: str) -> None:
    result = one(expr)
    assert result.error is None, result.error
    assert result.passed is True


def test_coercion_does_not_make_false_comparisons_true() -> None:
    assert [r.passed for r in run("o.y < 1", "1 > o.y", "size(o.xs) == 4.0", "o.xs == [1, 2]", "5 in o.xs")] == [
        False
    ] * 5


def test_booleans_are_not_numbers() -> None:
    result = one("o.ok == 1")
    assert not result.passed and "'(bool, int)'" in (result.error or "")


def test_null_equality_is_false_not_an_error() -> None:
    assert [r.passed for r in run("o.missing_value == null", "o.y != null", "o.y == null")] == [True, True, False]


def test_fractional_list_index_is_an_error() -> None:
    result = one("o.xs[1.5] == 2")
    assert not result.passed and "whole number" in (result.error or "")


# --- readable errors ---------------------------------------------------------------------------


def test_missing_field_names_it_and_lists_alternatives() -> None:
    result = one("o.nonexistent > 1")
    assert result.passed is False
    assert "o has no field 'nonexistent'" in (result.error or "")
    assert "available: der(x), label, missing_value, ok, xs, y" in (result.error or "")
    assert "'a0'" in (result.error or "") and "line 1, column 3" in (result.error or "")


def test_missing_nested_field_names_the_path() -> None:
    error = one("p.counts.states > 0").error or ""
    assert "p.counts has no field 'states'; available: inputs, outputs" in error


def test_missing_field_suggests_close_match() -> None:
    assert "did you mean 'label'?" in (one("o.lable == 'x'").error or "")


def test_missing_key_by_index() -> None:
    assert "o has no key 'nope'" in (one("o['nope'] == 1").error or "")


def test_unknown_top_level_name_suggests_namespace() -> None:
    error = one("y > 1").error or ""
    assert "unknown name 'y'" in error and "did you mean o.y?" in error


def test_missing_name_inside_macro_reports_the_root_cause() -> None:
    # cel-python would bury this under "no such overload ... CELEvalError(...)".
    error = one("o.xs.all(x, x > o.limit)").error or ""
    assert "o has no field 'limit'" in error and "CELEvalError" not in error


def test_type_mismatch_inside_macro_is_readable() -> None:
    error = one("o.xs.all(x, x < 'a')").error or ""
    assert "line 1, column 13" in error and "'<' applied to '(double, string)'" in error
    assert "CELEvalError" not in error


def test_field_of_a_number_is_explained() -> None:
    assert "o.y is a double, not a map" in (one("o.y.value > 1").error or "")


def test_unknown_function() -> None:
    assert "unknown function 'abs'" in (one("abs(o.y) > 1").error or "")


def test_syntax_error_names_assertion_line_and_column() -> None:
    result = one("o.y > 1 &&\n  o.y <")
    assert result.passed is False
    assert result.error is not None
    assert result.error.startswith("assertion 'a0': syntax error at line 2, column 7")
    assert "ends too early" in result.error


def test_syntax_error_unexpected_character() -> None:
    error = one("o.y @ 1").error or ""
    assert "line 1, column 5" in error and "unexpected character '@'" in error


def test_non_boolean_result_fails_with_value() -> None:
    result = one("o.y * 2")
    assert result.passed is False
    assert result.value == pytest.approx(11.8)
    assert "must evaluate to true/false, got double 11.8" in (result.error or "")
    listed = one("o.xs")
    assert listed.value == [1.0, 2.0, 3.0] and "got list" in (listed.error or "")


def test_runtime_error_is_reported() -> None:
    error = one("1 / 0 == 1").error or ""
    assert "divide by zero" in error


# --- limits ------------------------------------------------------------------------------------


def test_too_long_expression_is_refused() -> None:
    too_long = "o.y > 1 && " * 200 + "true"
    assert len(too_long) > MAX_EXPR_CHARS
    assertion = Assertion.model_construct(name="long", expr=too_long, severity=Severity.ERROR, message=None)
    (result,) = evaluate_assertions([assertion], inputs={}, outputs={"y": 2}, probe={})
    assert result.passed is False
    assert f"the limit is {MAX_EXPR_CHARS}" in (result.error or "")


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


def test_context_at_depth_limit_works() -> None:
    path = ".".join(["o"] + ["a"] * (cel.MAX_CONTEXT_DEPTH - 1) + ["leaf"])
    assert one(f"{path} == 1", outputs=_nested(cel.MAX_CONTEXT_DEPTH)).passed


def test_too_deep_context_fails_every_assertion_clearly() -> None:
    results = run("o.y > 1", "true", outputs=_nested(cel.MAX_CONTEXT_DEPTH + 1))
    assert [r.passed for r in results] == [False, False]
    for result in results:
        assert f"nested more than {cel.MAX_CONTEXT_DEPTH} levels" in (result.error or "")


def test_cyclic_context_does_not_recurse_forever() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert "nested more than" in (one("true", probe=cyclic).error or "")


def test_unsupported_context_value_fails_clearly() -> None:
    assert "p.thing has unsupported type object" in (one("true", probe={"thing": object()}).error or "")


def test_deeply_nested_expression_is_an_error_not_a_crash() -> None:
    limit = sys.getrecursionlimit()
    result = one("(" * 400 + "1" + ")" * 400 + " == 1")
    assert result.passed is False and "nested too deeply" in (result.error or "")
    assert sys.getrecursionlimit() == limit, "evaluation must not change the caller's recursion limit"


# --- timeout and isolation ---------------------------------------------------------------------


def test_timeout_stops_runaway_and_others_still_run(forks: list[int]) -> None:
    results = run("o.y > 1", RUNAWAY, "o.y < 10", timeout_s=0.3)
    assert [r.passed for r in results] == [True, False, True]
    assert "timed out after 0.3 s" in (results[1].error or "")
    assert results[0].error is None and results[2].error is None
    assert len(forks) == 2  # the killed child, then a fresh one for the remaining assertion
    assert_reaped(forks)


def test_timeout_works_off_the_main_thread() -> None:
    # A SIGALRM-based timer would not work here; the forked child does.
    box: dict[str, list[AssertionResult]] = {}
    worker = threading.Thread(target=lambda: box.setdefault("results", run(RUNAWAY, "o.y > 1", timeout_s=0.3)))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert [r.passed for r in box["results"]] == [False, True]
    assert "timed out" in (box["results"][0].error or "")


def test_one_child_per_call_not_per_assertion(forks: list[int]) -> None:
    results = run(*[f"o.y > {n}" for n in range(10)])
    assert [r.passed for r in results] == [True] * 6 + [False] * 4
    assert len(forks) == 1
    assert_reaped(forks)


def test_crash_in_child_fails_only_that_assertion(monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    real = cel._evaluate_one

    def crashing(ast: Any, source: str, name: str, context: dict[str, Any]) -> dict[str, Any]:
        if name == "a1":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(ast, source, name, context)

    monkeypatch.setattr(cel, "_evaluate_one", crashing)
    results = run("o.y > 1", "o.y > 2", "o.y > 3")
    assert [r.passed for r in results] == [True, False, True]
    assert "crashed (killed by signal SIGSEGV)" in (results[1].error or "")
    assert_reaped(forks)


def test_memory_blow_up_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "MEMORY_BUDGET_BYTES", 64 << 20)
    results = run("o.big.map(x, o.big + o.big).size() > 0", "o.y > 1", outputs={"big": list(range(5000)), "y": 2},
                  timeout_s=10)
    assert [r.passed for r in results] == [False, True]
    assert "ran out of memory" in (results[0].error or "")


def test_common_case_shares_one_evaluator_process(forks: list[int]) -> None:
    """Why the common case is cheap (timings live in bench/, not in tests): 20 assertions, one child."""
    results = run(*["o.y > 5.5 && o.y < 6.1"] * 20)
    assert all(r.passed for r in results)
    assert len(forks) == 1
    assert_reaped(forks)

# --- a batch's models share one evaluator (orchestration/batching.py) ---------------------------


def _models_through_a_batch(models: list[tuple[list[str], dict[str, Any]]],
                            timeout_s: float = 2.0) -> list[list[AssertionResult]]:
    """Each model's assertions evaluated from its own thread of a batch (``together``), as the CLI and a
    grouped Dagster step do; the backend is never asked to launch."""
    from validibot_pipelines.orchestration.batching import together

    def work(model: tuple[list[str], dict[str, Any]], _backend: Any) -> list[AssertionResult]:
        exprs, outputs = model
        return evaluate_assertions([Assertion(name=f"a{i}", expr=e) for i, e in enumerate(exprs)],
                                   inputs=INPUTS, outputs=outputs, probe=PROBE, timeout_s=timeout_s)

    return together(models, work, backend=None)


def test_a_batch_of_models_is_evaluated_in_one_child_with_each_models_own_results(forks: list[int]) -> None:
    models = [(["o.y > 5", "o.y < 6", "o.label == 'steady'"], {"y": 5.5, "label": "steady"}),
              (["o.y > 5", "o.y < 6", "o.label == 'steady'"], {"y": 6.5, "label": "gusty"}),
              (["o.nope > 1"], {"y": 1.0})]
    batched = _models_through_a_batch(models)
    assert len(forks) == 1  # three models, one evaluating child
    alone = [evaluate_assertions([Assertion(name=f"a{i}", expr=e) for i, e in enumerate(exprs)], inputs=INPUTS,
                                 outputs=outputs, probe=PROBE) for exprs, outputs in models]
    assert len(forks) == 4  # and one each when evaluated alone
    assert [[r.model_dump() for r in rs] for rs in batched] == [[r.model_dump() for r in rs] for rs in alone]
    assert [r.passed for r in batched[0]] == [True, True, True]
    assert [r.passed for r in batched[1]] == [True, False, False]
    assert "o has no field 'nope'; available: y" in (batched[2][0].error or "")
    assert_reaped(forks)


def test_a_runaway_assertion_in_a_batch_fails_alone(forks: list[int]) -> None:
    """One model's runaway expression times out; the other models' assertions (after it in the same child)
    are evaluated in a fresh child and pass."""
    batched = _models_through_a_batch([(["o.y > 1"], {"y": 2}), ([RUNAWAY], {"y": 2}), (["o.y < 10"], {"y": 2})],
                                      timeout_s=0.3)
    assert [[r.passed for r in rs] for rs in batched] == [[True], [False], [True]]
    assert "timed out after 0.3 s" in (batched[1][0].error or "")
    assert len(forks) == 2
    assert_reaped(forks)
