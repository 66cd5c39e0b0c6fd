"""Typed meshing inputs and outputs carried in the envelopes' ``inputs`` / ``outputs`` fields.

Shared by the control plane (which builds the inputs from the validation spec), the worker (which meshes) and
the Modal functions (which take the same quality targets as a plain dict). No gmsh import here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIME_STEP = "model/step"
MIME_STL = "model/stl"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityTargets(_Strict):
    """The spec's ``quality:`` block: every target met stops the strategy search early.

    SICN (signed inverse condition number) and gamma (inscribed/circumscribed radius ratio) are Gmsh's element
    quality measures: 1 is a perfect tetrahedron, 0 a flat one, negative an inverted one. Unset targets are not
    checked; with no targets at all the search stops at the first valid mesh (no inverted elements).
    """

    sicn_min: float | None = Field(default=None, ge=-1, le=1)
    sicn_avg: float | None = Field(default=None, ge=-1, le=1)
    gamma_min: float | None = Field(default=None, ge=0, le=1)
    gamma_avg: float | None = Field(default=None, ge=0, le=1)

    def unmet(self, quality: MeshQuality) -> list[str]:
        """Human-readable list of the targets ``quality`` misses (empty when all are met)."""
        from validibot_pipelines.validators.mesh.worker.quality import unmet

        return unmet(self.model_dump(), quality.model_dump())


class MeshStrategy(_Strict):
    """One candidate: Gmsh 2D/3D algorithms and an element size relative to the part's bounding-box diagonal.

    ``algorithm_2d``: 1 MeshAdapt, 2 Automatic, 5 Delaunay, 6 Frontal-Delaunay. ``algorithm_3d``: 1 Delaunay,
    4 Frontal, 7 MMG3D, 10 HXT. Sizes are relative so one list serves a 5 mm bracket and a 5 m frame.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", max_length=64)
    algorithm_2d: Literal[1, 2, 5, 6] = 6
    algorithm_3d: Literal[1, 4, 7, 10] = 1
    size_factor: float = Field(default=0.1, gt=0.001, le=1.0, description="max element size / bbox diagonal")
    optimize_netgen: bool = False
    timeout_seconds: float | None = Field(default=None, gt=0, description="overrides strategy_timeout_seconds")


#: Cheap and coarse first, so early stop pays off on easy parts; finer sizes and Netgen optimisation later for
#: parts whose coarse meshes miss the targets.
DEFAULT_STRATEGIES: tuple[MeshStrategy, ...] = (
    MeshStrategy(name="delaunay_coarse", algorithm_3d=1, size_factor=0.1),
    MeshStrategy(name="frontal_coarse", algorithm_3d=4, size_factor=0.1),
    MeshStrategy(name="hxt_coarse", algorithm_3d=10, size_factor=0.1),
    MeshStrategy(name="meshadapt_delaunay_coarse", algorithm_2d=1, algorithm_3d=1, size_factor=0.1),
    MeshStrategy(name="delaunay_medium", algorithm_3d=1, size_factor=0.05),
    MeshStrategy(name="hxt_medium", algorithm_3d=10, size_factor=0.05),
    MeshStrategy(name="delaunay_medium_netgen", algorithm_3d=1, size_factor=0.05, optimize_netgen=True),
    MeshStrategy(name="hxt_fine_netgen", algorithm_3d=10, size_factor=0.025, optimize_netgen=True),
)


class MeshingOptions(_Strict):
    """The spec's ``meshing:`` block: the strategy list and the limits each candidate runs under."""

    strategies: list[MeshStrategy] = Field(default_factory=lambda: list(DEFAULT_STRATEGIES), min_length=1)
    early_stop: bool = Field(default=True, description="stop at the first strategy meeting every target")
    strategy_timeout_seconds: float = Field(default=120, gt=0)
    max_elements: int = Field(default=2_000_000, gt=0, description="a candidate with more elements is rejected")
    parallel_volumes: int = Field(default=2, ge=1, le=64, description="volumes meshed at once (processes)")

    @model_validator(mode="after")
    def _unique_names(self) -> MeshingOptions:
        names = [s.name for s in self.strategies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate strategy names {dupes}; give each strategy its own name")
        return self


class PreviewAlgorithm(_Strict):
    """One 2D algorithm the preview tries (1 MeshAdapt, 2 Automatic, 5 Delaunay, 6 Frontal-Delaunay)."""

    algorithm_2d: Literal[1, 2, 5, 6]
    timeout_seconds: float | None = Field(default=None, gt=0, description="overrides preview.timeout_seconds")

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return {"algorithm_2d": value} if isinstance(value, int) else value  # `algorithms: [6, 5, 1]`


#: Gmsh's own default (Frontal-Delaunay) first — MeshAdapt took 342 s and 1.2 M triangles on a public part the
#: default meshed in 1.9 s — then Delaunay, and MeshAdapt, which copes with some surfaces the others do not.
DEFAULT_PREVIEW_ALGORITHMS = (6, 5, 1)


class PreviewOptions(_Strict):
    """The spec's ``preview:`` block: the 2D algorithms tried in order and how long each may take."""

    algorithms: list[PreviewAlgorithm] = Field(
        default_factory=lambda: [PreviewAlgorithm(algorithm_2d=a) for a in DEFAULT_PREVIEW_ALGORITHMS], min_length=1)
    timeout_seconds: float | None = Field(default=None, gt=0, description="per algorithm (default: the meshing "
                                          "strategy timeout)")


class MeshPreviewInputs(_Strict):
    kind: Literal["mesh_preview"] = "mesh_preview"
    #: Surface element sizes between diagonal/min_size_divisor and diagonal/max_size_divisor.
    min_size_divisor: float = Field(default=100, gt=0)
    max_size_divisor: float = Field(default=20, gt=0)
    #: The import's timeout, and each algorithm's unless it sets its own.
    timeout_seconds: float = Field(default=120, gt=0)
    algorithms: list[PreviewAlgorithm] = Field(default_factory=lambda: PreviewOptions().algorithms, min_length=1)


class MeshInputs(_Strict):
    kind: Literal["mesh_volume"] = "mesh_volume"
    targets: QualityTargets = Field(default_factory=QualityTargets)
    meshing: MeshingOptions = Field(default_factory=MeshingOptions)


class BoundingBox(_Strict):
    min: list[float]
    max: list[float]
    diagonal: float


class PreviewAttempt(_Strict):
    algorithm_2d: int
    outcome: Literal["ok", "failed", "timeout"]
    seconds: float
    detail: str = ""


class MeshPreviewOutputs(_Strict):
    """``algorithm`` is the 2D algorithm that meshed the preview; None (and no ``preview_uri``, zero counts) when
    every one failed on a part Gmsh could read — the volume mesh is still attempted then."""

    volumes: int
    surfaces: int
    vertex_count: int
    triangle_count: int
    bbox: BoundingBox
    preview_uri: str | None = None
    execution_seconds: float
    algorithm: int | None = None
    attempts: list[PreviewAttempt] = Field(default_factory=list)


class MeshQuality(_Strict):
    sicn_min: float
    sicn_avg: float
    sicn_max: float
    gamma_min: float
    gamma_avg: float
    elements: int
    nodes: int
    #: Scaled Jacobian and SIGE (Gmsh's ``minSJ`` / ``minSIGE``): reported, not scored.
    sj_min: float | None = None
    sj_avg: float | None = None
    sige_min: float | None = None
    sige_avg: float | None = None


class StrategyAttempt(_Strict):
    """One candidate tried on one volume; ``outcome`` says why it was kept or dropped."""

    volume: int
    strategy: str
    outcome: Literal["met_targets", "below_targets", "failed", "timeout", "too_many_elements", "skipped"]
    seconds: float
    score: float | None = None
    quality: MeshQuality | None = None
    detail: str = ""
    #: HXT candidates: whether HXT's optimiser ran and why (see worker/candidate.py).
    optimiser: str = ""


class VolumeResult(_Strict):
    volume: int
    strategy: str
    score: float
    targets_met: bool
    quality: MeshQuality


class MeshOutputs(_Strict):
    """Names of the headline numbers are fixed: they are bound under ``o`` for CEL and listed as metrics."""

    strategy: str
    score: float
    targets_met: bool
    sicn_min: float
    sicn_avg: float
    sicn_max: float
    gamma_min: float
    gamma_avg: float
    total_elements: int
    total_nodes: int
    sj_min: float | None = None
    sj_avg: float | None = None
    sige_min: float | None = None
    sige_avg: float | None = None
    volumes: list[VolumeResult]
    attempts: list[StrategyAttempt]
    msh_uri: str | None = None
    result_uri: str | None = None
    quality_uri: str | None = None
    execution_seconds: float = 0.0


#: Metric names bound under ``o`` in CEL assertions (the issue fixes the first seven; the scaled Jacobian and
#: SIGE came later, for solvers that check those before they run).
CEL_METRICS = ("sicn_min", "sicn_avg", "gamma_min", "gamma_avg", "total_elements", "total_nodes", "strategy",
               "sj_min", "sj_avg", "sige_min", "sige_avg")


SCHEMAS: dict[str, type[BaseModel]] = {  # exported by `validibot schemas` for worker authors
    "validibot.mesh.preview.inputs": MeshPreviewInputs,
    "validibot.mesh.preview.outputs": MeshPreviewOutputs,
    "validibot.mesh.inputs": MeshInputs,
    "validibot.mesh.outputs": MeshOutputs,
}
