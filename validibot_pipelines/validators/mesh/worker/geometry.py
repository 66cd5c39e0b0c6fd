"""Load a part into a Gmsh session (STEP through OpenCASCADE, STL through surface classification).

Imported only inside :mod:`~validibot_pipelines.validators.mesh.worker.child`, so ``import gmsh`` never happens in the
worker's parent process (nor, of course, in the Dagster control plane).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STL_FEATURE_ANGLE_DEGREES = 40.0
#: How many times this process has imported a part. Forked candidates inherit the count of the process that
#: imported the part for them, so a candidate reporting more than that imported it again.
imports = 0
#: Edges of the last imported STL's triangles that bound only one triangle (0: watertight, or not an STL).
open_edges = 0


@contextlib.contextmanager
def gmsh_session() -> Iterator[Any]:
    """An initialised, quiet, single-threaded Gmsh; always finalised.

    ``interruptible=False`` keeps Gmsh from installing its own SIGINT handler; one thread per child keeps
    candidates that run side by side (per-volume fan-out) from fighting over the cores and keeps results
    reproducible (HXT is only deterministic single-threaded).
    """
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.Verbosity", 1)
        gmsh.option.setNumber("General.NumThreads", 1)
        yield gmsh
    finally:
        gmsh.finalize()


def load_part(gmsh: Any, path: Path) -> str:
    """Import ``path`` into the current model; return the kernel used (``occ`` for STEP, ``geo`` for STL)."""
    global imports
    imports += 1
    suffix = path.suffix.lower()
    if suffix in {".step", ".stp"}:
        gmsh.model.occ.importShapes(str(path))
        gmsh.model.occ.synchronize()
        return "occ"
    if suffix == ".stl":
        global open_edges
        gmsh.merge(str(path))
        open_edges = _open_edges(gmsh)
        # Rebuild CAD-like patches from the triangles so the surface can be remeshed and closed into a volume.
        angle = math.radians(STL_FEATURE_ANGLE_DEGREES)
        gmsh.model.mesh.classifySurfaces(angle, True, True, math.pi)
        gmsh.model.mesh.createGeometry()
        surfaces = [tag for _, tag in gmsh.model.getEntities(2)]
        if surfaces and not open_edges:  # an open surface encloses nothing: no volume (MESH_OPEN_SURFACE)
            loop = gmsh.model.geo.addSurfaceLoop(surfaces)
            gmsh.model.geo.addVolume([loop])
        gmsh.model.geo.synchronize()
        return "geo"
    raise ValueError(f"{path.name}: unsupported CAD format {suffix!r}; use .step, .stp or .stl")


def _open_edges(gmsh: Any) -> int:
    """How many edges of the imported triangles bound only one triangle: 0 for a watertight STL surface, the
    length of its holes' rims otherwise (a terrain patch, a vessel cut open for extrusion)."""
    import numpy as np

    edges = []
    for kind, _tags, nodes in zip(*gmsh.model.mesh.getElements(2), strict=True):
        per = gmsh.model.mesh.getElementProperties(kind)[3]
        triangles = np.asarray(nodes).reshape(-1, per)[:, :3]
        edges.append(np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]),
                             axis=1))
    if not edges:
        return 0
    _, uses = np.unique(np.concatenate(edges), axis=0, return_counts=True)
    return int((uses == 1).sum())


def close_shell(gmsh: Any) -> bool:
    """Make a solid of a STEP part that is only loose faces, the way Gmsh's own benchmark does for such a part
    (``benchmarks/step/mesh_T106_V3.geo``: ``BooleanFragments`` of the surfaces, a ``Surface Loop`` of them,
    a ``Volume``), for when ``healShapes`` made no solid of a part that had none. Not for a part whose solids
    healing dropped: closing its faces would fuse separate bodies into one.

    Sewing the loop (``sewing=True``) joins edges that coincide only within the export's tolerance. The solid
    is kept only if it encloses something — positive volume, and every edge of its boundary bounds exactly two
    of its faces — so an open shell (a face missing) stays without a solid and gets ``MESH_NO_SOLIDS``, not a
    bogus volume. True when a solid was made."""
    occ = gmsh.model.occ
    surfaces = gmsh.model.getEntities(2)
    if not surfaces or gmsh.model.getEntities(3):
        return False
    try:
        if len(surfaces) > 1:
            occ.fragment(surfaces[:1], surfaces[1:])
            occ.synchronize()
        volume = occ.addVolume([occ.addSurfaceLoop([tag for _, tag in gmsh.model.getEntities(2)], sewing=True)])
        occ.synchronize()
        faces = gmsh.model.getBoundary([(3, volume)], oriented=False)
        uses = Counter(abs(tag) for face in faces for _, tag in gmsh.model.getBoundary([face], oriented=False))
        if occ.getMass(3, volume) > 0 and uses and set(uses.values()) == {2}:
            return True
        occ.remove([(3, volume)])
        occ.synchronize()
    except Exception:  # noqa: BLE001 - Gmsh raises plain Exceptions; then the part simply has no solid
        return False
    return False


def bounding_box(gmsh: Any) -> dict[str, Any]:
    xmin, ymin, zmin, xmax, ymax, zmax = gmsh.model.getBoundingBox(-1, -1)
    diagonal = math.dist((xmin, ymin, zmin), (xmax, ymax, zmax))
    return {"min": [xmin, ymin, zmin], "max": [xmax, ymax, zmax], "diagonal": diagonal}


def keep_only_volume(gmsh: Any, kernel: str, volume: int) -> None:
    """Drop every other volume (with the surfaces only they use) so one candidate meshes one volume."""
    others = [(3, tag) for _, tag in gmsh.model.getEntities(3) if tag != volume]
    if not others:
        return
    if kernel != "occ":
        raise ValueError("per-volume meshing of STL parts is not supported (an STL part is one volume)")
    gmsh.model.occ.remove(others, recursive=True)
    gmsh.model.occ.synchronize()
