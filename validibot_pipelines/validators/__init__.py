"""Validators are plugins: one folder each under ``validators/``, registered once in :data:`REGISTERED`.

A validator folder holds, by file name (so the worker/control-plane boundary shows in the names):

* ``spec.py`` — the spec keys it reads and their types (no ``dagster``; intake parses specs with them);
* ``intake.py`` — its control-plane checks on an upload (bytes and XML only, never native code);
* ``envelopes.py`` — its typed envelope inputs/outputs (both sides; no ``dagster``);
* ``worker/`` — its worker runners (``RUNNERS``: validator type → ``module:function``; ``MODAL_FUNCTIONS``);
  worker side, imports no ``dagster``;
* ``launch.py``, ``assets.py`` — control plane: what it launches, how it presents results in Dagster;
* ``validator.py`` — ``VALIDATOR``, its :class:`~validibot_pipelines.validators.registry.Validator`;
* ``modal_app.py`` and ``image/`` (``apt.txt``, ``requirements.txt``, ``requirements-nodeps.txt``) — its workers'
  images for Modal and for Docker / Cloud Run (``containers/Dockerfile``).

Everything generic (definitions, jobs, sensors, backends, the CLI, the demo, code versions, the images' label)
derives from this list; this package itself imports no ``dagster`` so the worker side can use it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

REGISTERED: tuple[str, ...] = ("fmi", "energyplus", "mesh", "xml")
"""The one registration of each validator (its folder's name), in the order the UI, CLI and demo list them."""

HERE = Path(__file__).resolve().parent
METADATA_LABEL = "org.validibot.validator.metadata"
"""Docker label every worker image carries: JSON {name, version, file_types, code_version, steps}."""


@dataclass(frozen=True)
class ImageLists:
    """What a validator's worker image installs: the same lists for Docker, Cloud Run and Modal."""

    apt: tuple[str, ...]
    pip: tuple[str, ...]
    pip_no_deps: tuple[str, ...]


def folder(name: str) -> Path:
    if name not in REGISTERED:
        raise KeyError(f"no validator {name!r}; registered: {', '.join(REGISTERED)}")
    return HERE / name


def _listed(path: Path) -> tuple[str, ...]:
    lines = path.read_text().splitlines() if path.is_file() else []
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def image_lists(name: str) -> ImageLists:
    """``validators/<name>/image/{apt,requirements,requirements-nodeps}.txt``."""
    image = folder(name) / "image"
    if not (image / "requirements.txt").is_file():
        raise FileNotFoundError(f"validators/{name}/image/requirements.txt is missing: every validator image lists "
                                "its pinned runtime dependencies there (see containers/Dockerfile)")
    return ImageLists(apt=_listed(image / "apt.txt"), pip=_listed(image / "requirements.txt"),
                      pip_no_deps=_listed(image / "requirements-nodeps.txt"))


def _worker(name: str):  # noqa: ANN202 - a module
    return importlib.import_module(f"validibot_pipelines.validators.{name}.worker")


def worker_runners() -> dict[str, str]:
    """Validator type (the envelope's ``validator.type``) → ``module:function`` of its runner, every validator."""
    runners: dict[str, str] = {}
    for name in REGISTERED:
        runners.update(_worker(name).RUNNERS)
    return runners


def _warm_names(names: list[str]) -> list[tuple[str, bool]]:
    """(validator, for assets) per registered name of a session's warm list (``fmi`` or ``fmi:assets``)."""
    split = [(name.partition(":")[0], name.partition(":")[2] == "assets") for name in names]
    return [(name, assets) for name, assets in split if name in REGISTERED]


def sandboxed_modules(names: list[str]) -> list[str]:
    """The modules the workers of validators ``names`` fork in warm sandboxes (unknown names are skipped)."""
    return [module for name, _ in _warm_names(names) for module in getattr(_worker(name), "SANDBOXED", ())]


def runner_modules(names: list[str]) -> list[str]:
    """The modules of validators ``names``' worker runners (a worker session imports them, and what each lists
    in ``PRELOAD``, before its first model; unknown names are skipped). ``<validator>:assets`` — a Dagster
    run's session — adds the worker's ``FOR_ASSETS``: modules only the assets' launches use (the FMI result
    plot), which ``validibot validate`` would import for nothing."""
    return sorted({module for name, assets in _warm_names(names) for module in
                   [target.partition(":")[0] for target in _worker(name).RUNNERS.values()]
                   + list(getattr(_worker(name), "FOR_ASSETS", ()) if assets else ())})


def modal_functions() -> dict[str, str]:
    """Validator type → the Modal function (in the validator's ``modal_app.py``) that runs it."""
    functions: dict[str, str] = {}
    for name in REGISTERED:
        functions.update(_worker(name).MODAL_FUNCTIONS)
    return functions


def owner_of(validator_type: str) -> str:
    """The registered validator whose worker runs ``validator_type`` (e.g. ``fmi-probe`` → ``fmi``)."""
    for name in REGISTERED:
        if validator_type in _worker(name).RUNNERS:
            return name
    raise KeyError(f"no registered validator runs {validator_type!r}")


def spec_module(name: str):  # noqa: ANN201 - a module with TITLE, SPEC_KEYS, SPEC_FIELDS
    return importlib.import_module(f"validibot_pipelines.validators.{name}.spec")
