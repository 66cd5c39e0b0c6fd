"""The FMI validator's deployment settings: fields of the ``settings`` resource (ValidibotSettings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

MiB = 1024 * 1024
# The Modal volume caching FMUs by checksum: mounted by modal_app.py, uploaded to by the control plane's
# ModalBackend; FMI_USE_TEST_VOLUME=1 (or VALIDIBOT_ENV=test) picks its -test twin on both sides.
FMI_CACHE_VOLUME, FMI_TEST_FLAG = "fmi-cache", "FMI_USE_TEST_VOLUME"
SETTINGS_FIELDS: dict[str, tuple[Any, Any]] = {
    "fmu_max_bytes": (int, Field(default=50 * MiB, description="FMU size cap")),
    "fmu_max_uncompressed_bytes": (int, Field(default=500 * MiB)),
    "fmu_max_ratio": (float, Field(default=100.0, description="zip-bomb guard: uncompressed / compressed")),
    "simulation_timeout_seconds": (int, Field(default=300, description="per FMU simulation")),
    # side files (timeseries.py reads these by name: TimeseriesLimits.from_settings)
    "timeseries_max_bytes": (int, Field(default=50 * MiB, gt=0, description="FMU input time series CSV cap")),
    "timeseries_max_rows": (int, Field(default=1_000_000, gt=0, description="data rows of an input time series")),
    "timeseries_max_columns": (int, Field(default=1_000, gt=1, description="columns (time + inputs) of a time series")),
}
