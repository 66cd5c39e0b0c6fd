"""Dagster resources: settings and the compute backends (one module per backend under ``backends/``)."""

from validibot_pipelines.resources.backends.docker import DockerBackend
from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
from validibot_pipelines.resources.settings import ValidibotSettings

__all__ = ["DockerBackend", "LocalSubprocessBackend", "ValidibotSettings"]
