"""What an FMU's spec may say beyond the common keys (``inputs``, ``outputs``, ``assertions``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from validibot_pipelines.validators.fmi.envelopes import ReferenceSettings, SimulationSettings

TITLE = "FMU"
SPEC_KEYS = ("simulation", "inputs", "outputs", "input_timeseries", "reference", "assertions")
SPEC_FIELDS: dict[str, tuple[Any, Any]] = {
    # the envelope's own settings (same bounds, same meaning: None = from the model), handed over untranslated
    "simulation": (SimulationSettings, Field(default_factory=SimulationSettings)),
    # a CSV (time, <input>...) uploaded next to the model
    "input_timeseries": (str | None, Field(default=None, min_length=1)),
    # a reference result CSV next to the model, with tolerances
    "reference": (ReferenceSettings | None, None),
}
