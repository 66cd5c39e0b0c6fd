"""What an EnergyPlus model's spec may say beyond the common keys (``inputs``, ``outputs``, ``assertions``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field


def _divides_hour(value: int | None) -> int | None:
    """EnergyPlus refuses timesteps that do not divide the hour evenly; say so before the run."""
    if value is not None and 60 % value:
        allowed = ", ".join(str(n) for n in range(1, 61) if 60 % n == 0)
        raise ValueError(f"must divide 60 evenly (one of {allowed}), got {value}")
    return value


TITLE = "EnergyPlus"
SPEC_KEYS = ("weather", "timestep_per_hour", "fail_on_severe", "inputs", "outputs", "assertions")
SPEC_FIELDS: dict[str, tuple[Any, Any]] = {
    "weather": (str | None, Field(default=None, min_length=1)),  # a shipped .epw or one uploaded beside the model
    "timestep_per_hour": (Annotated[int | None, AfterValidator(_divides_hour)], Field(default=None, ge=1, le=60)),
    # Severe errors of a finished run are WARNINGs by default (EnergyPlus itself carries on); a project that
    # treats them as defects in the model sets this to make them fail the validation.
    "fail_on_severe": (bool | None, Field(default=None)),
}
