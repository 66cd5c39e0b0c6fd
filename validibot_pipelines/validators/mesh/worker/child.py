"""The throw-away process that runs Gmsh: ``python -m validibot_pipelines.validators.mesh.worker.child REQUEST.json``.

Modes (``request["mode"]``):

* ``inspect``: import the part; report volumes, surfaces and the bounding box.
* ``preview``: MeshAdapt surface mesh, sizes between diagonal/100 and diagonal/20 → ``{vertices, triangles,
  bbox}`` JSON at ``request["preview"]``.
* ``volume``: one candidate: one volume with one strategy → ``.msh`` at ``request["msh"]`` and its quality.
* ``merge``: the chosen per-volume ``.msh`` files → one ``.msh`` (tetrahedra and boundary triangles per volume
  in physical groups ``volume_<tag>`` / ``boundary_<tag>``, node and element tags offset so volumes never
  collide) with the quality of the whole mesh and histograms.

The answer is written to ``<request>.result.json``: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``
(Gmsh's own words, which is what the user needs to fix the part). A crash or hang is seen by the parent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.mesh.worker.geometry import bounding_box, gmsh_session, keep_only_volume, load_part
from validibot_pipelines.validators.mesh.worker.quality import measure

TRIANGLE = 2  # Gmsh element type of 3-node triangles
COORD_DIGITS = 6


def inspect(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    load_part(gmsh, Path(request["part"]))
    surfaces = len(gmsh.model.getEntities(2))
    return {"volumes": [tag for _, tag in gmsh.model.getEntities(3)], "surfaces": surfaces,
            "bbox": bounding_box(gmsh) if gmsh.model.getEntities() else None}  # Gmsh raises on an empty bbox


def preview(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    found = inspect(gmsh, request)
    if not found["surfaces"]:
        return found
    diagonal = found["bbox"]["diagonal"]
    gmsh.option.setNumber("Mesh.Algorithm", 1)  # MeshAdapt: robust on messy CAD surfaces, fine for a preview
    gmsh.option.setNumber("Mesh.MeshSizeMin", diagonal / request["min_size_divisor"])
    gmsh.option.setNumber("Mesh.MeshSizeMax", diagonal / request["max_size_divisor"])
    gmsh.model.mesh.generate(2)
    tri_tags, tri_nodes = gmsh.model.mesh.getElementsByType(TRIANGLE)
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    used = np.unique(tri_nodes)
    order = np.argsort(node_tags)
    positions = order[np.searchsorted(node_tags, used, sorter=order)]
    vertices = np.asarray(coords).reshape(-1, 3)[positions]
    triangles = np.searchsorted(used, tri_nodes).reshape(-1, 3)
    document = {"vertices": np.round(vertices, COORD_DIGITS).tolist(), "triangles": triangles.tolist(),
                "bbox": found["bbox"]}
    Path(request["preview"]).write_text(json.dumps(document, separators=(",", ":")))
    return {**found, "vertex_count": int(len(vertices)), "triangle_count": int(len(tri_tags))}


def volume(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    kernel = load_part(gmsh, Path(request["part"]))
    keep_only_volume(gmsh, kernel, request["volume"])
    strategy = request["strategy"]
    size = request["diagonal"] * strategy["size_factor"]
    gmsh.option.setNumber("Mesh.Algorithm", strategy["algorithm_2d"])
    gmsh.option.setNumber("Mesh.Algorithm3D", strategy["algorithm_3d"])
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size / 10)
    gmsh.option.setNumber("Mesh.Optimize", 1)
    gmsh.option.setNumber("Mesh.OptimizeNetgen", 1 if strategy["optimize_netgen"] else 0)
    gmsh.model.mesh.generate(3)
    quality = measure(gmsh)
    if quality["elements"] and quality["elements"] <= request["max_elements"]:
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(request["msh"])
    return {"quality": quality}


def merge(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Copy each volume's nodes, 3D elements and boundary triangles into one discrete model.

    Per volume ``i``: a discrete volume entity ``i`` bounded by a discrete surface entity ``i`` holding its
    boundary triangles (what a solver needs to apply boundary conditions), each in a physical group named
    after the part's volume (``volume_<tag>``, ``boundary_<tag>``) — solvers address regions by physical
    group, and Gmsh writes only physical elements once any group exists. Node and element tags are offset so
    volumes meshed in separate processes never collide.
    """
    import numpy as np

    pieces = []
    for path in request["inputs"]:
        gmsh.clear()
        gmsh.merge(path)
        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        blocks = {dim: gmsh.model.mesh.getElements(dim) for dim in (2, 3)}
        pieces.append((np.asarray(node_tags), np.asarray(coords), blocks))
    gmsh.clear()
    gmsh.model.add(request["name"])
    node_offset = 0
    element_offset = 0
    for index, (node_tags, coords, blocks) in enumerate(pieces, start=1):
        surface = gmsh.model.addDiscreteEntity(2, index)
        volume = gmsh.model.addDiscreteEntity(3, index, [surface])
        gmsh.model.mesh.addNodes(3, volume, (node_tags + node_offset).tolist(), coords.tolist())
        for dim, entity in ((3, volume), (2, surface)):
            types, _tags, elem_nodes = blocks[dim]
            for etype, nodes in zip(types, elem_nodes, strict=True):
                count = len(nodes) // gmsh.model.mesh.getElementProperties(etype)[3]
                tags = np.arange(element_offset + 1, element_offset + count + 1)
                gmsh.model.mesh.addElementsByType(entity, etype, tags.tolist(),
                                                  (np.asarray(nodes) + node_offset).tolist())
                element_offset += count
        node_offset += int(node_tags.max()) if len(node_tags) else 0
        source = request.get("volumes", list(range(1, len(pieces) + 1)))[index - 1]
        gmsh.model.addPhysicalGroup(3, [volume], index, name=f"volume_{source}")
        gmsh.model.addPhysicalGroup(2, [surface], index, name=f"boundary_{source}")
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.write(request["msh"])
    return {"quality": measure(gmsh, histogram=True)}


MODES = {"inspect": inspect, "preview": preview, "volume": volume, "merge": merge}


def main() -> int:
    request_path = Path(sys.argv[1])
    request = json.loads(request_path.read_text())
    result_path = request_path.with_name(request_path.name + ".result.json")
    try:
        import gmsh  # noqa: F401 - a failure here is the worker's environment, not the part
    except (ImportError, OSError) as exc:
        broken = {"ok": False, "engine_broken": True, "error": f"{type(exc).__name__}: {exc}"}
        result_path.write_text(json.dumps(broken))
        return 1
    try:
        with gmsh_session() as gmsh:
            answer = {"ok": True, **MODES[request["mode"]](gmsh, request)}
        code = 0
    except Exception as exc:  # Gmsh/OpenCASCADE errors are the part's problem; the parent words the finding
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    result_path.write_text(json.dumps(answer))
    return code


if __name__ == "__main__":
    sys.exit(main())
