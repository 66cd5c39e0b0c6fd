"""Why no strategy meshed a volume, read from Gmsh's own words, and the fix that fits that reason.

"Raise the limits" is the right advice only when the candidates hit limits; a part whose boundary intersects
itself fails with every algorithm at every size, and more time or elements will not help. So the attempts of a
failed volume are classified (plain Python, no Gmsh: the trusted worker does it from the candidates' results):

* ``MESH_SELF_INTERSECTING`` — TetGen/Delaunay's ``PLC Error: A segment and a facet intersect``;
* ``MESH_OVERLAPPING_FACETS`` — ``Invalid boundary mesh (overlapping facets)``;
* ``MESH_NO_STRATEGY_SUCCEEDED`` — a limit was hit (timeout, sandbox memory/CPU, ``max_elements``);
* ``MESH_EMPTY_VOLUME`` — every candidate ran and produced no tetrahedra (an open or inside-out shell);
* ``MESH_STRATEGIES_FAILED`` — anything else, with Gmsh's words.

Before any search, an STL surface with holes is ``MESH_OPEN_SURFACE`` (:func:`open_surface_text`): it encloses
no volume, so no strategy is tried.

Geometry reasons win over limits (a candidate that timed out on a self-intersecting volume would not have
succeeded with more time), and limits over an empty result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from validibot_pipelines.validators.mesh.envelopes import StrategyAttempt

SELF_INTERSECTING = "MESH_SELF_INTERSECTING"
OVERLAPPING = "MESH_OVERLAPPING_FACETS"
LIMIT = "MESH_NO_STRATEGY_SUCCEEDED"
EMPTY = "MESH_EMPTY_VOLUME"
OTHER = "MESH_STRATEGIES_FAILED"
OPEN_SURFACE = "MESH_OPEN_SURFACE"
#: Reasons that are the geometry's, which OpenCASCADE's shape healing may repair.
GEOMETRY = (SELF_INTERSECTING, OVERLAPPING)
_PRIORITY = (SELF_INTERSECTING, OVERLAPPING, LIMIT, EMPTY, OTHER)
_MARKERS = {
    SELF_INTERSECTING: ("a segment and a facet intersect", "plc error", "self-intersect", "facets intersect"),
    OVERLAPPING: ("overlapping facets", "overlapping facet"),
}
_NO_ELEMENTS = ("produced no 3d elements", "no elements in volume", "no tetrahedra")
_LIMIT_OUTCOMES = ("timeout", "too_many_elements")


@dataclass(frozen=True)
class Reason:
    code: str
    problem: str
    fix: str


_WORDS = {
    SELF_INTERSECTING: Reason(SELF_INTERSECTING, "the boundary intersects itself (Gmsh: \"PLC Error: A segment "
                              "and a facet intersect\")", "fuse or cut overlapping bodies in the CAD tool (a boolean "
                              "union), remove crossing faces, and export one closed solid per body"),
    OVERLAPPING: Reason(OVERLAPPING, "the boundary has overlapping facets (Gmsh: \"Invalid boundary mesh "
                        "(overlapping facets)\")", "remove duplicate or coincident faces (bodies exported twice, "
                        "faces shared by two solids that were not fused) and export a clean closed solid"),
    LIMIT: Reason(LIMIT, "the strategies stopped at limits (time, sandbox memory/CPU or element count)",
                  "raise meshing.max_elements or "
                  "meshing.strategy_timeout_seconds, add coarser strategies, or remove tiny features"),
    EMPTY: Reason(EMPTY, "every strategy ran but produced no tetrahedra (the volume encloses no space Gmsh can "
                  "fill)", "export a closed, outward-oriented solid (not an open shell or a zero-thickness body)"),
    OTHER: Reason(OTHER, "Gmsh failed with every strategy", "check the solid in the CAD tool (closed, "
                  "non-self-intersecting, no sliver faces) and re-export it, or try other strategies"),
}


def _reason_of(attempt: StrategyAttempt) -> str | None:
    text = attempt.detail.lower()
    for code, markers in _MARKERS.items():
        if any(marker in text for marker in markers):
            return code
    if attempt.outcome in _LIMIT_OUTCOMES or "stopped at a sandbox limit" in text:
        return LIMIT
    if any(marker in text for marker in _NO_ELEMENTS):
        return EMPTY
    if attempt.outcome == "failed":
        return OTHER
    return None  # kept or skipped


def classify(attempts: list[StrategyAttempt]) -> Reason:
    """The reason one volume's ``attempts`` (none of which produced a usable mesh) failed."""
    found = {code for a in attempts if (code := _reason_of(a))}
    if EMPTY in found and OTHER in found and not found & {*GEOMETRY, LIMIT}:
        return _WORDS[OTHER]  # Gmsh's own error says more than "no tetrahedra" from another algorithm
    for code in _PRIORITY:
        if code in found:
            return _WORDS[code]
    return _WORDS[OTHER]


def failure_text(name: str, volumes: list[int], reason: Reason, attempts: list[StrategyAttempt]) -> str:
    """One sentence naming the file, the volumes, the problem, the fix, and then every attempt and why."""
    tried = "; ".join(f"volume {a.volume} {a.strategy}: {a.outcome} ({a.detail})" for a in attempts
                      if a.volume in volumes)
    return (f"{name}: no strategy meshed volume(s) {', '.join(map(str, volumes))}: {reason.problem}; "
            f"{reason.fix} — {tried}")


def overall(reasons: dict[int, Reason]) -> Reason:
    """The code a failed part ends with: the most telling reason among its failed volumes."""
    codes = {r.code for r in reasons.values()}
    return next(_WORDS[c] for c in _PRIORITY if c in codes)


def open_edges(facts: dict[str, Any]) -> int:
    """The child's count of STL edges bounding one triangle, if it is a well-formed one (the facts are the
    sandboxed child's: untrusted), else 0."""
    value = facts.get("open_edges")
    return value if type(value) is int and 0 < value < 1 << 40 else 0


def open_surface_text(name: str, edges: int) -> str:
    return (f"{name}: the STL surface is not closed ({edges:,} triangle edge(s) border a hole), so it encloses no "
            "volume to mesh; close the holes (make the surface watertight) in the CAD or mesh tool and export it "
            "again")
