"""The mesh preview plot (control plane: reads data files only, runs no model code).

The FMI result plot is drawn by the worker (``validators/fmi/worker/plot.py``).
"""

from __future__ import annotations

import io
from typing import Any


def _figure(width: float, height: float) -> Any:
    """A figure on matplotlib's Agg canvas, without pyplot.

    Why not pyplot: a batch renders one preview per model from several threads at once, and pyplot keeps global
    state (its figure registry) that is not thread-safe and must be closed by hand; a bare ``Figure`` is
    garbage-collected with its last reference. matplotlib is imported on first plot (it is slow to import).
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def surface_png(document: dict, title: str, max_triangles: int = 20000) -> bytes:
    """Render a preview surface mesh (``{vertices, triangles}``) as a shaded 3D view, for the asset's metadata."""
    import numpy as np
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    vertices = np.asarray(document["vertices"], dtype=float)
    triangles = np.asarray(document["triangles"], dtype=int)[:max_triangles]
    fig = _figure(4, 4)
    ax = fig.add_subplot(projection="3d")
    if len(triangles):
        ax.add_collection3d(Poly3DCollection(vertices[triangles], facecolor="#8fb3d9", edgecolor="#31557a",
                                             linewidths=0.2))
        low, high = vertices.min(axis=0), vertices.max(axis=0)
        centre, half = (low + high) / 2, (high - low).max() / 2 or 1.0
        for setter, mid in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
            setter(mid - half, mid + half)
    ax.set_title(title, fontsize=9)
    return _png(fig)
