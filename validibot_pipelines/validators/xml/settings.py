"""The XML validator's deployment settings: fields of the ``settings`` resource (ValidibotSettings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

SETTINGS_FIELDS: dict[str, tuple[Any, Any]] = {
    "xml_max_bytes": (int, Field(default=50 * 1024 * 1024, gt=0, description="XML model (and each XSD) size cap")),
    "xml_timeout_seconds": (int, Field(default=120, gt=0, description="per schema validation")),
}
