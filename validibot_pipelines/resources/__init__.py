"""Dagster resources: settings and the compute backends (one module per backend under ``backends/``).

The names below are imported on first use (PEP 562), so ``validibot validate`` — which needs only the
Dagster-free parts (``backends/base.py``, ``backends/local_process.py``) — does not pay for Dagster, the Docker
SDK and dagster-docker (about 1.4 s) at start-up.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DockerBackend": "validibot_pipelines.resources.backends.docker",
    "LocalSubprocessBackend": "validibot_pipelines.resources.backends.local",
    "ValidibotSettings": "validibot_pipelines.resources.settings",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
