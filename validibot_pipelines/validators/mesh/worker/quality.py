"""Element quality (Gmsh's SICN and gamma), the score that ranks candidate meshes, and the verdict on each.

``measure`` needs a live Gmsh session (child side); ``score``, ``unmet``, ``judge`` and ``rank`` are plain
Python (no pydantic, no Gmsh): the sandboxed search decides its early stop and the merge with them, and the
worker parent, outside, decides again with the very same functions from what the candidates left.
"""

from __future__ import annotations

from typing import Any

HISTOGRAM_BINS = 10
#: Weights of the score: the worst element matters most (one sliver can ruin a solve), the averages say how
#: good the bulk of the mesh is.
WEIGHTS = {"sicn_min": 0.4, "sicn_avg": 0.3, "gamma_min": 0.1, "gamma_avg": 0.2}


def score(quality: dict[str, Any]) -> float:
    """Rank in [0, 1]; 0 for any mesh with an inverted or flat element (SICN <= 0), which no solver accepts."""
    if quality["sicn_min"] <= 0:
        return 0.0
    return round(sum(weight * float(quality[key]) for key, weight in WEIGHTS.items()), 4)


#: Further Gmsh measures reported (min and average) next to SICN and gamma, not scored: the scaled Jacobian
#: (``minSJ``, what many FE codes check before solving: the element's smallest Jacobian over its largest, so 1 for
#: every linear tetrahedron that is not inverted, <= 0 for an inverted one — it tells more on curved, high-order
#: elements) and the signed inverse gradient error (``minSIGE``: how well the element's shape interpolates
#: gradients, 1 for a regular tetrahedron, falling towards 0 for slivers, like SICN).
EXTRA_MEASURES = {"sj": "minSJ", "sige": "minSIGE"}
EXTRA_KEYS = tuple(f"{key}_{stat}" for key in EXTRA_MEASURES for stat in ("min", "avg"))
TARGET_KEYS = ("sicn_min", "sicn_avg", "gamma_min", "gamma_avg")
KEPT = ("met_targets", "below_targets")  # outcomes whose mesh may be chosen


def unmet(targets: dict[str, Any], quality: dict[str, Any]) -> list[str]:
    """Human-readable list of the ``targets`` (a ``QualityTargets`` as a dict) ``quality`` misses; empty when all
    are met. A flat or inverted element always misses."""
    misses = []
    for key in TARGET_KEYS:
        target = targets.get(key)
        achieved = quality[key]
        if target is not None and achieved < target:
            misses.append(f"{key} {achieved:.3f} < {target:g}")
    if quality["sicn_min"] <= 0:
        misses.append(f"sicn_min {quality['sicn_min']:.3f} <= 0 (inverted or flat elements)")
    return misses


def judge(quality: dict[str, Any], targets: dict[str, Any], max_elements: int) -> tuple[str, str]:
    """``(outcome, detail)`` of a candidate that produced ``quality``: ``failed`` (no 3D elements),
    ``too_many_elements``, ``below_targets`` or ``met_targets``."""
    if not quality.get("elements"):
        return "failed", "produced no 3D elements"
    if quality["elements"] > max_elements:
        return "too_many_elements", f"{quality['elements']:,} elements > max_elements {max_elements:,}"
    misses = unmet(targets, quality)
    return ("below_targets" if misses else "met_targets"), "; ".join(misses)


def rank(outcome: str, candidate_score: float | None) -> tuple[bool, float]:
    """Sort key of the kept candidates of one volume: a candidate meeting the targets first, then the score
    (``max`` takes the earliest of equals, i.e. the first strategy in the list)."""
    return outcome == "met_targets", candidate_score or 0.0


def measure(gmsh: Any, histogram: bool = False) -> dict[str, Any]:
    """SICN/gamma (and scaled Jacobian / SIGE) statistics over every 3D element of the current model, plus
    element and node counts."""
    import numpy as np

    _types, tags, _nodes = gmsh.model.mesh.getElements(3)
    element_tags = np.concatenate(tags) if len(tags) else np.array([], dtype=np.uint64)
    node_tags = gmsh.model.mesh.getNodes()[0]
    if not len(element_tags):
        return {"elements": 0, "nodes": int(len(node_tags))}
    sicn = np.asarray(gmsh.model.mesh.getElementQualities(element_tags, "minSICN"))
    gamma = np.asarray(gmsh.model.mesh.getElementQualities(element_tags, "gamma"))
    result: dict[str, Any] = {
        "sicn_min": float(sicn.min()), "sicn_avg": float(sicn.mean()), "sicn_max": float(sicn.max()),
        "gamma_min": float(gamma.min()), "gamma_avg": float(gamma.mean()),
        "elements": int(len(element_tags)), "nodes": int(len(node_tags)),
    }
    for key, measure_name in EXTRA_MEASURES.items():
        values = np.asarray(gmsh.model.mesh.getElementQualities(element_tags, measure_name))
        result[f"{key}_min"], result[f"{key}_avg"] = float(values.min()), float(values.mean())
    if histogram:
        edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        result["histograms"] = {
            "bin_edges": [round(float(e), 3) for e in edges],
            "sicn": np.histogram(np.clip(sicn, 0.0, 1.0), bins=edges)[0].tolist(),
            "gamma": np.histogram(np.clip(gamma, 0.0, 1.0), bins=edges)[0].tolist(),
            "sicn_inverted": int((sicn <= 0).sum()),
        }
    return result
