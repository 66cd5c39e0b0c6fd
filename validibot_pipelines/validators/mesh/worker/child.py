"""The throw-away process that runs Gmsh: ``python -m validibot_pipelines.validators.mesh.worker.child REQUEST.json``.

Modes (``request["mode"]``):

* ``mesh``: the whole volume mesh of a part — import it once, report its volumes, surfaces and bounding box
  (also to ``inspect.json`` at once), then the strategy search and the merge, each candidate (and the merge) in
  a process forked from the imported state (:mod:`.forks`): the search as described in
  :mod:`~validibot_pipelines.validators.mesh.worker.volume`, at most ``parallel`` candidates at a time, each
  under its own timeout, writing ``<candidate>.json`` (and ``<candidate>.msh``); the winners merged into
  ``merged.msh`` (``merge.json``). The answer lists how each forked process ended; the worker, outside,
  decides again from those files which candidates count and whether the merge is the one it wants.
* ``inspect``: import the part; report volumes, surfaces and the bounding box.
* ``preview``: surface mesh, sizes between diagonal/100 and diagonal/20, with the first of
  ``request["algorithms"]`` that succeeds, each forked under its own timeout (:mod:`.surface`; Gmsh's
  default Frontal-Delaunay first) → ``{vertices, triangles, bbox}`` JSON at ``request["preview"]``.
* ``volume``: one candidate on its own: import the part, one volume with one strategy → ``.msh`` at
  ``request["msh"]`` and its quality (what each forked candidate of ``mesh`` does, minus the import;
  :mod:`.candidate`).
* ``merge``: the chosen per-volume ``.msh`` files → one ``.msh`` (tetrahedra and boundary triangles per volume
  in physical groups ``volume_<tag>`` / ``boundary_<tag>``, node and element tags offset so volumes never
  collide) with the quality of the whole mesh and histograms.

The answer is written to ``<request>.result.json``: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``
(Gmsh's own words, which is what the user needs to fix the part). A crash or hang is seen by the parent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.mesh.worker import geometry, surface
from validibot_pipelines.validators.mesh.worker.candidate import mesh_volume
from validibot_pipelines.validators.mesh.worker.forks import Forks
from validibot_pipelines.validators.mesh.worker.geometry import bounding_box, close_shell, gmsh_session, load_part
from validibot_pipelines.validators.mesh.worker.quality import KEPT, judge, measure, rank, score

CHILD_MODULE = "validibot_pipelines.validators.mesh.worker.child"
#: What a warm sandbox's parent imports before forking this module's children (runtime/sandbox/warm.py).
#: Measured: what a first ``mesh``/``volume``/``merge``/``preview`` in a fresh process imports lazily (Gmsh's
#: numpy glue, ``numpy.ma`` for ``np.unique``); ``import gmsh`` itself (numpy and the Gmsh/OpenCASCADE
#: libraries, ~0.3-0.5 s) is most of a cold child's start.
PRELOAD = ("gmsh", "numpy", "numpy.ctypeslib", "numpy.ma", "atexit")
INSPECT = "inspect.json"  # mode mesh: the part's facts, written as soon as it is imported
MERGE = "merge"  # mode mesh: the merge's key in the answer and its result file, merge.json
MERGED_MSH = "merged.msh"


def candidate_key(volume: int, strategy: str) -> str:
    """Names a candidate's files in mode ``mesh`` (``<key>.json``, ``<key>.msh``); the worker outside derives
    the same names from its own list of volumes and strategies (strategy names are ``[A-Za-z0-9_]+``)."""
    return f"v{int(volume)}-{strategy}"


def inspect(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    load_part(gmsh, Path(request["part"]))
    surfaces = len(gmsh.model.getEntities(2))
    return {"volumes": [tag for _, tag in gmsh.model.getEntities(3)], "surfaces": surfaces,
            "bbox": bounding_box(gmsh) if gmsh.model.getEntities() else None,  # Gmsh raises on an empty bbox
            "open_edges": geometry.open_edges}


def preview(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    return surface.preview(gmsh, request, inspect(gmsh, request))


def volume(gmsh: Any, request: dict[str, Any]) -> dict[str, Any]:
    kernel = load_part(gmsh, Path(request["part"]))
    return mesh_volume(gmsh, kernel, request)


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


def mesh(gmsh: Any, request: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Mode ``mesh`` (see the module docstring): one import, then every candidate and the merge forked from it.

    With ``request["heal"]`` the imported shapes are healed first (``healShapes``, then
    :func:`~.geometry.close_shell` if that made no solid). The import runs under
    ``request["import_timeout"]`` (SIGALRM, whose default action ends this process: a
    part that hangs OpenCASCADE is stopped there, and the worker reports it as timed out).
    """
    signal.setitimer(signal.ITIMER_REAL, float(request["import_timeout"]))
    try:
        kernel = load_part(gmsh, Path(request["part"]))
        if request.get("heal") and kernel == "occ":
            # OpenCASCADE's ShapeFix (degenerate and small edges/faces, sewing, solids from shells): asked for by
            # the worker only after the part failed to mesh for its geometry.
            had_solids = bool(gmsh.model.getEntities(3))
            gmsh.model.occ.healShapes()
            gmsh.model.occ.synchronize()
            if not had_solids:  # loose faces healing did not make a solid of (never solids healing dropped)
                close_shell(gmsh)
        found = {"volumes": [tag for _, tag in gmsh.model.getEntities(3)], "surfaces": len(gmsh.model.getEntities(2)),
                 "bbox": bounding_box(gmsh) if gmsh.model.getEntities() else None}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    found["imports"] = geometry.imports
    found["open_edges"] = geometry.open_edges
    found["pid"] = os.getpid()
    (folder / INSPECT).write_text(json.dumps(found))
    if not found["volumes"]:
        return found
    return {**found, **_search(gmsh, kernel, found["volumes"], found["bbox"]["diagonal"], request, folder)}


def _search(gmsh: Any, kernel: str, volumes: list[int], diagonal: float, request: dict[str, Any],
            folder: Path) -> dict[str, Any]:
    """Per volume the strategies in order, one forked candidate at a time, up to ``parallel`` volumes at once;
    a volume is done at its first candidate meeting the targets (``early_stop``) or when its strategies run
    out. Then the best candidate of each volume is merged, in a forked process too."""
    strategies = request["strategies"]
    targets, max_elements = request["targets"], request["max_elements"]
    forks = Forks()
    waiting = list(volumes)
    tried: dict[int, int] = {}
    kept: dict[int, list[tuple[tuple[bool, float], str]]] = {v: [] for v in volumes}
    volume_of: dict[str, int] = {}
    records: dict[str, dict[str, Any]] = {}

    def start_next(vol: int) -> bool:
        index = tried[vol]
        if index >= len(strategies):
            return False
        tried[vol] = index + 1
        strategy = strategies[index]
        key = candidate_key(vol, strategy["name"])
        task = {"volume": vol, "strategy": strategy, "diagonal": diagonal, "max_elements": max_elements,
                "msh": str(folder / f"{key}.msh"), "targets": targets, "timeout": strategy["timeout"]}
        volume_of[key] = vol
        forks.start(key, lambda: mesh_volume(gmsh, kernel, task), folder / f"{key}.json", strategy["timeout"],
                    strategy["cpu_seconds"])
        return True

    def fill() -> None:
        while len(forks) < request["parallel"] and waiting:
            vol = waiting.pop(0)
            tried[vol] = 0
            start_next(vol)

    try:
        fill()
        while len(forks):
            for key, record in forks.wait():
                records[key] = record
                vol = volume_of[key]
                outcome, found_score = _own_verdict(folder / f"{key}.json", record, targets, max_elements)
                if outcome in KEPT:
                    kept[vol].append((rank(outcome, found_score), key))
                if (outcome == "met_targets" and request["early_stop"]) or not start_next(vol):
                    fill()
        answer: dict[str, Any] = {"candidates": records, "merge": None}
        if all(kept[v] for v in volumes):
            winners = [max(kept[v], key=lambda c: c[0])[1] for v in volumes]
            job = {"inputs": [str(folder / f"{key}.msh") for key in winners], "volumes": volumes,
                   "msh": str(folder / MERGED_MSH), "name": request["name"]}
            forks.start(MERGE, lambda: merge(gmsh, job), folder / f"{MERGE}.json", request["merge_timeout"],
                        request["merge_cpu_seconds"])
            ((_, record),) = forks.wait()
            answer["merge"] = {"inputs": winners, **record}
        return answer
    finally:
        forks.kill_all()


def _own_verdict(result: Path, record: dict[str, Any], targets: dict[str, Any],
                 max_elements: int) -> tuple[str, float | None]:
    """What the search goes by: the candidate's outcome and score, from what it wrote (the worker outside
    judges again, itself, from the same file)."""
    if record["returncode"] != 0 or record["timed_out"]:
        return "failed", None
    try:
        data = json.loads(result.read_text())
        quality = data["quality"]
        outcome, _detail = judge(quality, targets, max_elements)
        return outcome, score(quality) if outcome in KEPT else None
    except (OSError, ValueError, KeyError, TypeError):
        return "failed", None


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
            if request["mode"] == "mesh":
                answer = {"ok": True, **mesh(gmsh, request, request_path.parent)}
            else:
                answer = {"ok": True, **MODES[request["mode"]](gmsh, request)}
        code = 0
    except Exception as exc:  # Gmsh/OpenCASCADE errors are the part's problem; the parent words the finding
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    result_path.write_text(json.dumps(answer))
    return code


if __name__ == "__main__":
    sys.exit(main())
