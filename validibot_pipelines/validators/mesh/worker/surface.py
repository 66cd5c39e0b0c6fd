"""Child side of the preview: import the part once, then try the 2D algorithms in order, each in a process
forked from the imported state under its own timeout (:mod:`.forks`), until one meshes the surfaces.

An algorithm that fails, crashes or hangs on some surface ends alone and the next one gets its turn; the part's
facts (volumes, surfaces, bounding box) are written to ``inspect.json`` right after the import, so the worker
can tell "Gmsh could not read the part" from "no algorithm could surface-mesh it". Imported only in the
sandboxed Gmsh child.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.mesh.worker.forks import Forks

TRIANGLE = 2  # Gmsh element type of 3-node triangles
COORD_DIGITS = 6
INSPECT = "inspect.json"


def preview(gmsh: Any, request: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """``found``: the imported part's facts. Tries ``request["algorithms"]`` (each ``{algorithm_2d, timeout,
    cpu_seconds}``); the first that meshes writes ``request["preview"]``. Returns the facts, the counts and the
    algorithm that meshed (None when none did) and how each attempt ended."""
    folder = Path(request["preview"]).parent
    (folder / INSPECT).write_text(json.dumps(found))
    if not found["surfaces"]:
        return found
    attempts = []
    for index, algorithm in enumerate(request["algorithms"]):
        key = f"preview-{index}"
        forks = Forks()
        try:
            forks.start(key, lambda a=algorithm["algorithm_2d"]: _surface(gmsh, request, found, a),
                        folder / f"{key}.json", algorithm["timeout"], algorithm["cpu_seconds"])
            ((_, record),) = forks.wait()
        finally:
            forks.kill_all()
        result = _read(folder / f"{key}.json")
        attempts.append({"algorithm_2d": algorithm["algorithm_2d"], "record": record,
                         "error": None if result.get("ok") else result.get("error")})
        if record["returncode"] == 0 and not record["timed_out"] and result.get("ok"):
            return {**found, "vertex_count": result["vertex_count"], "triangle_count": result["triangle_count"],
                    "algorithm": algorithm["algorithm_2d"], "attempts": attempts}
    return {**found, "vertex_count": 0, "triangle_count": 0, "algorithm": None, "attempts": attempts}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _surface(gmsh: Any, request: dict[str, Any], found: dict[str, Any], algorithm: int) -> dict[str, Any]:
    """Surface mesh with sizes between diagonal/``min_size_divisor`` and /``max_size_divisor`` → ``{vertices,
    triangles, bbox}`` JSON (0-based triangle indices) at ``request["preview"]``."""
    import numpy as np

    diagonal = found["bbox"]["diagonal"]
    gmsh.option.setNumber("Mesh.Algorithm", algorithm)
    gmsh.option.setNumber("Mesh.MeshSizeMin", diagonal / request["min_size_divisor"])
    gmsh.option.setNumber("Mesh.MeshSizeMax", diagonal / request["max_size_divisor"])
    gmsh.model.mesh.generate(2)
    tri_tags, tri_nodes = gmsh.model.mesh.getElementsByType(TRIANGLE)
    if not len(tri_tags):
        raise RuntimeError(f"2D algorithm {algorithm} produced no triangles")
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    used = np.unique(tri_nodes)
    order = np.argsort(node_tags)
    positions = order[np.searchsorted(node_tags, used, sorter=order)]
    vertices = np.asarray(coords).reshape(-1, 3)[positions]
    triangles = np.searchsorted(used, tri_nodes).reshape(-1, 3)
    document = {"vertices": np.round(vertices, COORD_DIGITS).tolist(), "triangles": triangles.tolist(),
                "bbox": found["bbox"]}
    Path(request["preview"]).write_text(json.dumps(document, separators=(",", ":")))
    return {"vertex_count": int(len(vertices)), "triangle_count": int(len(tri_tags))}
