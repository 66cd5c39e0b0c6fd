"""Compute backends: each launches the worker entrypoint under the same container contract.

``LaunchRecord`` is imported on first use (PEP 562), so a light module here (``worker_session.py``, which
``validibot validate`` imports first) does not pay for pydantic and the envelopes.
"""

from typing import Any

__all__ = ["LaunchRecord"]


def __getattr__(name: str) -> Any:
    if name != "LaunchRecord":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from validibot_pipelines.resources.backends.base import LaunchRecord

    return LaunchRecord
