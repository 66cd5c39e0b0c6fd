"""What every backend reports about one worker launch (shown as asset metadata in the UI)."""

from __future__ import annotations

from pydantic import BaseModel


class LaunchRecord(BaseModel):
    backend: str
    launch_id: str  # pid, container id, Modal call id or Cloud Run execution name
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str = ""
