"""The control plane's view of the registered validators: what each one accepts, runs and shows.

Each ``validators/<name>/validator.py`` defines ``VALIDATOR``, a :class:`Validator`. Everything generic reads
these — definitions, jobs, partitions, spec sources, landing routing, the Docker sweep, code versions, backend
selection, ``validibot validate`` / ``validators`` / ``demo`` — so adding a validator is its folder plus its name
in :data:`validibot_pipelines.validators.REGISTERED`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validibot_pipelines.validators import REGISTERED

if TYPE_CHECKING:
    from dagster import DynamicPartitionsDefinition
    from pydantic import BaseModel

    from validibot_pipelines.envelopes import OutputEnvelope, ValidatorRef
    from validibot_pipelines.intake.common import IntakeReport
    from validibot_pipelines.orchestration.models import ModelRecord


def _no_attach(_record: ModelRecord, _store_uri: str, _limits: Any) -> None:
    """Most validators read nothing beside the model."""


@dataclass(frozen=True)
class Validator:
    """One registered validator, as the control plane sees it.

    ``steps`` are its worker steps in run order (their :class:`ValidatorRef` ids and versions make the asset
    group's code version); ``intake_asset`` is the asset whose run config carries an upload's URIs.
    """

    name: str
    suffixes: Mapping[str, str]  # ".fmu" -> MIME type
    partitions_attr: str  # its DynamicPartitionsDefinition's name in its partitions.py (see ``partitions``)
    intake_asset: str
    job_description: str
    steps: Sequence[ValidatorRef]
    check: Callable[[Path, str, Any], IntakeReport]  # (local copy, file name, limits) -> report
    looks_complete: Callable[[str, int, bytes, bytes], bool]  # (suffix, size, head, tail): upload finished?
    limits: Callable[[Any], BaseModel]  # settings resource (or None: defaults) -> this validator's intake limits
    assets: Callable[[], list[Any]]  # its Dagster assets (built lazily: importing them needs dagster)
    validate: Callable[..., OutputEnvelope]  # in-process run for `validibot validate` (record, store, backend, …)
    summary: Callable[[OutputEnvelope], list[str]]  # extra lines for `validibot validate`'s human summary
    demo_samples: Callable[[Path, int], list[Path]] = field(default=lambda _landing, _copies: [])  # (landing, copies)
    attach: Callable[[ModelRecord, str, Any], None] = _no_attach  # (record, store, its limits): side files
    side_files: Mapping[str, str] = field(default_factory=dict)  # suffixes of files that ride along with models
    engine_versions: Callable[[], list[str]] = field(default=lambda: [])  # e.g. ["engine@25.1.0"]
    modal_cache_volume: str = ""  # a Modal volume caching this validator's inputs by checksum ('' = none)
    modal_test_flag: str = ""  # env var that, set to 1, picks the volume's -test twin (as VALIDIBOT_ENV=test does)
    key_values: Sequence[str] = ()  # metadata entries of its assets the cross-model report shows (assets/report.py)
    # Artifact upload URLs signed per launch on a cloud store (orchestration/access.py): what its worker may store.
    artifact_slots: int = 8

    @property
    def title(self) -> str:
        """How messages name its models, e.g. "FMU" (its ``spec.py`` TITLE)."""
        from validibot_pipelines.validators import spec_module

        return spec_module(self.name).TITLE

    @property
    def partitions(self) -> DynamicPartitionsDefinition:
        """Its models' dynamic partitions (``<name>/partitions.py``), imported on first use: building them needs
        Dagster, which ``validibot validate`` never imports."""
        return getattr(importlib.import_module(f"validibot_pipelines.validators.{self.name}.partitions"),
                       self.partitions_attr)

    @property
    def job_name(self) -> str:
        return f"{self.name}_validation"

    @property
    def backend_resource(self) -> str:
        return f"{self.name}_backend"

    def code_version(self) -> str:
        """e.g. ``fmi-probe@0.1.0+fmi-simulation@0.1.0`` — changes when a step's version or the engine changes."""
        return "+".join([*(f"{v.id}@{v.version}" for v in self.steps), *self.engine_versions()])

    def file_types(self) -> list[str]:
        return sorted(self.suffixes)


@cache
def validators() -> tuple[Validator, ...]:
    """Every registered validator, in :data:`REGISTERED` order."""
    return tuple(importlib.import_module(f"validibot_pipelines.validators.{name}.validator").VALIDATOR
                 for name in REGISTERED)


def get(name: str) -> Validator:
    for validator in validators():
        if validator.name == name:
            return validator
    raise KeyError(f"no validator {name!r}; registered: {', '.join(REGISTERED)}")


def for_suffix(suffix: str) -> tuple[Validator, str] | None:
    """(validator, MIME type) for a file suffix (case-insensitive), or ``None`` when no validator takes it."""
    for validator in validators():
        mime = validator.suffixes.get(suffix.lower())
        if mime:
            return validator, mime
    return None


def all_suffixes() -> list[str]:
    return sorted(s for v in validators() for s in v.suffixes)


def side_file_suffixes() -> list[str]:
    """Suffixes of files that accompany models (weather, time series, schemas): not stray in a landing zone."""
    return sorted({s for v in validators() for s in v.side_files})


def metadata(validator: Validator) -> dict[str, Any]:
    """What a worker image declares in its ``org.validibot.validator.metadata`` label."""
    from validibot_pipelines import __version__

    return {"name": validator.name, "version": __version__, "file_types": validator.file_types(),
            "code_version": validator.code_version(), "steps": [v.type for v in validator.steps]}
