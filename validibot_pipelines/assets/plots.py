"""Small plots of result time series (control plane: reads data files only, runs no model code)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd


def _pyplot() -> Any:
    """pyplot on the non-interactive Agg backend, imported on first plot (matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed so a long-running code server does not accumulate them."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return buf.getvalue()


def numeric_series(frame: pd.DataFrame) -> list[tuple[str, Any]]:
    """(label, float values) per plottable signal: scalar columns, and array columns element by element
    (``y[0]``, ``y[1]``…, flattened in row-major order); text columns are left out."""
    import numpy as np

    series = []
    for column in frame.columns:
        if column == "time":
            continue
        values = frame[column]
        if values.dtype == object and len(values) and hasattr(values.iloc[0], "__len__") \
                and not isinstance(values.iloc[0], str | bytes):
            stacked = np.stack([np.asarray(v, dtype=float).ravel() for v in values])
            series += [(f"{column}[{i}]", stacked[:, i]) for i in range(stacked.shape[1])]
        elif values.dtype.kind in "biuf":
            series.append((column, values.astype(float).to_numpy()))
    return series


def timeseries_png(frame: pd.DataFrame, title: str, max_series: int = 8,
                   reference: pd.DataFrame | None = None) -> bytes:
    plt = _pyplot()
    series = numeric_series(frame)[:max_series]
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    for label, values in series:
        line, = ax.plot(frame["time"], values, label=label)
        if reference is not None and label in reference.columns:
            ax.plot(reference["time"], reference[label].astype(float), linestyle="--", color=line.get_color(),
                    label=f"{label} (reference)")
    ax.set_xlabel("time [s]")
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def surface_png(document: dict, title: str, max_triangles: int = 20000) -> bytes:
    """Render a preview surface mesh (``{vertices, triangles}``) as a shaded 3D view, for the asset's metadata."""
    import numpy as np
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    vertices = np.asarray(document["vertices"], dtype=float)
    triangles = np.asarray(document["triangles"], dtype=int)[:max_triangles]
    fig = _pyplot().figure(figsize=(4, 4), dpi=80)
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
