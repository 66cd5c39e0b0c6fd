"""Element quality (Gmsh's SICN and gamma) and the score that ranks candidate meshes.

``measure`` needs a live Gmsh session (child side); ``score`` and ``combine`` are plain Python so the worker
parent can rank candidates without importing Gmsh.
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


def measure(gmsh: Any, histogram: bool = False) -> dict[str, Any]:
    """SICN/gamma statistics over every 3D element of the current model, plus element and node counts."""
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
    if histogram:
        edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        result["histograms"] = {
            "bin_edges": [round(float(e), 3) for e in edges],
            "sicn": np.histogram(np.clip(sicn, 0.0, 1.0), bins=edges)[0].tolist(),
            "gamma": np.histogram(np.clip(gamma, 0.0, 1.0), bins=edges)[0].tolist(),
            "sicn_inverted": int((sicn <= 0).sum()),
        }
    return result
