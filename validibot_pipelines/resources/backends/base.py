"""What every backend reports about one worker launch (shown as asset metadata in the UI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LaunchRecord(BaseModel):
    backend: str
    launch_id: str  # pid, container id, Modal call id or Cloud Run execution name
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str = ""
    image: str | None = None  # image tag / app version the worker ran, where the backend has one
    error: str | None = None  # the backend could not launch the worker at all (engine down, image missing)
    details: dict[str, Any] = Field(default_factory=dict)  # backend-specific: image id, timings, limits
