"""The meshing validator's deployment settings: fields of the ``settings`` resource (ValidibotSettings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

SETTINGS_FIELDS: dict[str, tuple[Any, Any]] = {
    "mesh_max_bytes": (int, Field(default=100 * 1024 * 1024, description="STEP / STL size cap")),
    "mesh_strategy_timeout_seconds": (int, Field(default=120, description="per meshing strategy candidate")),
}
