"""The step context handed to ``open_pipes_session``.

Dagster 1.13's Pipes session reads ``context.run_id`` while building the context it injects; on an
``AssetExecutionContext`` that property is deprecated (``context.run.run_id``) and warns on every launch. The
asset context wraps an ``OpExecutionContext`` of the same step (``op_execution_context``), whose ``run_id`` is
not deprecated and which Pipes accepts just the same, so the sessions are opened on that.
"""

from __future__ import annotations

from typing import Any


def op_context(context: Any) -> Any:
    """The ``OpExecutionContext`` under an asset step's context (an op context is returned as it is)."""
    return getattr(context, "op_execution_context", context)
