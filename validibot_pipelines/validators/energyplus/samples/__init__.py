"""Sample EnergyPlus models written for this project (EnergyPlus ships no example files in its wheel)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def sample_idf(name: str, suffix: str = ".idf") -> Path:
    """Path of a committed sample model, e.g. ``sample_idf("one_zone_box")`` or ``(..., ".epJSON")``."""
    path = HERE / f"{name}{suffix}"
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in HERE.iterdir() if p.suffix != ".py"))
        raise FileNotFoundError(f"no sample model {path.name}; have: {have}")
    return path
