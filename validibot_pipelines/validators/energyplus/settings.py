"""The EnergyPlus validator's deployment settings: fields of the ``settings`` resource (ValidibotSettings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

MiB = 1024 * 1024
SETTINGS_FIELDS: dict[str, tuple[Any, Any]] = {
    "energyplus_max_bytes": (int, Field(default=20 * MiB, description="IDF / epJSON size cap")),
    "energyplus_timeout_seconds": (int, Field(default=1800, description="per EnergyPlus simulation")),
    # side files (weather.py reads this by name: WeatherLimits.from_settings)
    "weather_max_bytes": (int, Field(default=20 * MiB, gt=0, description="uploaded .epw weather file cap")),
    "energyplus_file_max_bytes": (int, Field(default=20 * MiB, gt=0,
                                             description="each file a model reads (Schedule:File CSV, ##include)")),
}
