"""Sample CAD parts for the meshing validator, generated with Gmsh's OpenCASCADE kernel (nothing committed
but this code): a box, a cylinder with a hole, a two-volume assembly, a surface without a solid, an empty model,
an STL of the box, and broken parts (a solid whose boundary intersects itself, that solid beside a sound box,
two overlapping boxes not fused — self-intersecting once written as STL — a cube of unsewn faces, a box of
loose faces with a 0.5 µm gap, and the same box open).

``python -m validibot_pipelines.validators.mesh.samples OUT_DIR`` writes them all. Generation runs Gmsh, so it
belongs in tests, the demo and the benchmark — never in the Dagster control plane.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """OpenCASCADE's STEP writer prints banners straight to fd 1 even with General.Terminal=0."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _box(gmsh: Any) -> None:
    gmsh.model.occ.addBox(0, 0, 0, 40, 20, 10)


def _cylinder_with_hole(gmsh: Any) -> None:
    outer = gmsh.model.occ.addCylinder(0, 0, 0, 0, 0, 30, 15)
    hole = gmsh.model.occ.addCylinder(0, 0, -1, 0, 0, 32, 6)
    gmsh.model.occ.cut([(3, outer)], [(3, hole)])


def _two_volume_assembly(gmsh: Any) -> None:
    gmsh.model.occ.addBox(0, 0, 0, 20, 20, 20)
    gmsh.model.occ.addCylinder(40, 10, 0, 0, 0, 20, 8)


def _crossed_shell(gmsh: Any) -> None:
    """One solid whose shell is the faces of two overlapping boxes, not fused: its boundary intersects itself."""
    a = gmsh.model.occ.addBox(0, 0, 0, 20, 20, 20)
    b = gmsh.model.occ.addBox(10, 10, 10, 20, 20, 20)
    gmsh.model.occ.synchronize()
    faces = [tag for _, tag in gmsh.model.getBoundary([(3, a), (3, b)], oriented=False)]
    gmsh.model.occ.remove([(3, a), (3, b)])
    gmsh.model.occ.addVolume([gmsh.model.occ.addSurfaceLoop(faces, sewing=False)])


def _self_intersecting(gmsh: Any) -> None:
    _crossed_shell(gmsh)


def _one_bad_volume(gmsh: Any) -> None:
    """Two volumes: the self-intersecting solid (volume 1) and a sound box beside it (volume 2)."""
    _crossed_shell(gmsh)
    gmsh.model.occ.addBox(50, 0, 0, 10, 10, 10)


def _unsewn_box(gmsh: Any) -> None:
    """A cube's six faces as separate squares sharing no edges, in one unsewn shell: OpenCASCADE makes no solid
    of it, shape healing (sewing) does."""
    occ, side, quarter = gmsh.model.occ, 20, 1.5707963267948966
    faces = [occ.addRectangle(0, 0, 0, side, side), occ.addRectangle(0, 0, side, side, side)]
    for axis, shift in (((1, 0, 0), (0, 0, 0)), ((1, 0, 0), (0, side, 0)), ((0, 1, 0), (0, 0, 0)),
                        ((0, 1, 0), (side, 0, 0))):
        face = occ.addRectangle(0, 0, 0, side, side)
        occ.rotate([(2, face)], 0, 0, 0, *axis, quarter if axis[0] else -quarter)
        occ.translate([(2, face)], *shift)
        faces.append(face)
    occ.addVolume([occ.addSurfaceLoop(faces, sewing=False)])


def _quad(gmsh: Any, corners: list[tuple[float, float, float]]) -> None:
    occ = gmsh.model.occ
    points = [occ.addPoint(*corner) for corner in corners]
    lines = [occ.addLine(points[i], points[(i + 1) % 4]) for i in range(4)]
    occ.addPlaneSurface([occ.addCurveLoop(lines)])


def _loose_faces(gmsh: Any, top: bool) -> None:
    """A 20 mm box as loose faces, no shell and no solid: bottom, top 0.5 µm too high (an export's tolerance
    gap) and each side in two halves (edges meeting other edges half-way), without the top when ``top`` is
    false."""
    side, gap = 20.0, 5e-7
    _quad(gmsh, [(0, 0, 0), (side, 0, 0), (side, side, 0), (0, side, 0)])
    if top:
        _quad(gmsh, [(0, 0, side + gap), (side, 0, side + gap), (side, side, side + gap), (0, side, side + gap)])
    for a, b in (((0, 0), (side, 0)), ((side, 0), (side, side)), ((side, side), (0, side)), ((0, side), (0, 0))):
        middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        for p, q in ((a, middle), (middle, b)):
            _quad(gmsh, [(p[0], p[1], 0), (q[0], q[1], 0), (q[0], q[1], side), (p[0], p[1], side)])


def _gapped_faces(gmsh: Any) -> None:
    """Loose faces enclosing a box within 0.5 µm: ``healShapes`` makes no solid of them; Gmsh's own recipe (a
    sewn surface loop of the fragmented faces) does."""
    _loose_faces(gmsh, top=True)


def _open_box(gmsh: Any) -> None:
    """The same faces without the top: an open shell, which no healing may turn into a solid."""
    _loose_faces(gmsh, top=False)


def _overlapping_boxes(gmsh: Any) -> None:
    """Two overlapping boxes, not fused: two sound solids in STEP; as an STL, one surface crossing itself."""
    gmsh.model.occ.addBox(0, 0, 0, 20, 20, 20)
    gmsh.model.occ.addBox(10, 10, 10, 20, 20, 20)


def _surface_only(gmsh: Any) -> None:
    """A flat sheet: valid geometry for a preview, but no solid to fill with a volume mesh."""
    gmsh.model.occ.addRectangle(0, 0, 0, 30, 10)


def _empty(gmsh: Any) -> None:
    """A model with no shapes: the STEP file is well formed but holds no geometry."""


PARTS: dict[str, Callable[[Any], None]] = {
    "box": _box,
    "cylinder_with_hole": _cylinder_with_hole,
    "two_volume_assembly": _two_volume_assembly,
    "surface_only": _surface_only,
    "empty": _empty,
    "self_intersecting": _self_intersecting,
    "one_bad_volume": _one_bad_volume,
    "overlapping_boxes": _overlapping_boxes,
    "unsewn_box": _unsewn_box,
    "gapped_faces": _gapped_faces,
    "open_box": _open_box,
}


def make_part(name: str, out_dir: Path, suffix: str = ".step") -> Path:
    """Write sample part ``name`` as ``out_dir/<name><suffix>`` (``.step`` or ``.stl``) and return its path."""
    import gmsh

    if name not in PARTS:
        raise KeyError(f"no sample part {name!r}; have: {', '.join(PARTS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}{suffix}"
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add(name)
        PARTS[name](gmsh)
        gmsh.model.occ.synchronize()
        if suffix == ".stl":  # STL is a triangulated surface: mesh the boundary, then write it
            gmsh.option.setNumber("Mesh.MeshSizeMax", 5.0)
            gmsh.model.mesh.generate(2)
        with _quiet_stdout():
            gmsh.write(str(path))
    finally:
        gmsh.finalize()
    return path


def make_all(out_dir: Path) -> dict[str, Path]:
    return {name: make_part(name, out_dir) for name in PARTS}


if __name__ == "__main__":
    for built in make_all(Path(sys.argv[1] if len(sys.argv) > 1 else ".")).values():
        print(built)
