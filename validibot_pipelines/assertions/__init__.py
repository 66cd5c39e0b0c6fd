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

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_CONTEXT_DEPTH", "MAX_EXPR_CHARS", "AssertionResult", "evaluate_assertions"]
