"""Compute backends: each launches the worker entrypoint under the same container contract."""

from validibot_pipelines.resources.backends.base import LaunchRecord

__all__ = ["LaunchRecord"]
