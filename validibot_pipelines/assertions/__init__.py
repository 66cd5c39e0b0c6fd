"""Post-run assertions: CEL expressions over a run's inputs (``i``), outputs (``o``) and probe facts (``p``).

Kept free of Dagster so the worker containers and the CLI can evaluate assertions without it.
"""

from validibot_pipelines.assertions.cel import (
    DEFAULT_TIMEOUT_S,
    MAX_CONTEXT_DEPTH,
    MAX_EXPR_CHARS,
    AssertionResult,
    evaluate_assertions,
)
from validibot_pipelines.envelopes import Severity, Status


def verdict(results: list[AssertionResult]) -> Status:
    """failed_validation when any ERROR-severity assertion failed; WARNING/INFO failures are reported only."""
    failed = [r for r in results if not r.passed and r.severity == Severity.ERROR]
    return Status.FAILED_VALIDATION if failed else Status.SUCCESS


__all__ = ["DEFAULT_TIMEOUT_S", "MAX_CONTEXT_DEPTH", "MAX_EXPR_CHARS", "AssertionResult", "evaluate_assertions",
           "verdict"]
