"""Small plots of result time series (control plane: reads data files only, runs no model code)."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import pandas as pd


def _figure(width: float, height: float) -> Any:
    """A figure on matplotlib's Agg canvas, without pyplot.

    Why not pyplot: a batch renders one plot per model from several threads at once, and pyplot keeps global
    state (its figure registry) that is not thread-safe and must be closed by hand; a bare ``Figure`` is
    garbage-collected with its last reference. matplotlib is imported on first plot (it is slow to import).
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
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


class _Canvas:
    """One time-series figure, kept and drawn again for the next plot.

    Building the figure is a third of a plot's cost (the axes, and the tick objects matplotlib makes on the
    first draw), so the canvas is reused: the previous plot's lines and legend are removed, the colour cycle
    reset and the limits recomputed, which renders byte-for-byte what a fresh figure renders
    (``tests/test_plots.py``) in less time (measured: 34 → 24 ms for a 300-sample plot).
    """

    def __init__(self) -> None:
        from matplotlib.ticker import MaxNLocator

        self.fig = _figure(6, 3)
        self.ax = self.fig.add_axes((0.12, 0.16, 0.85, 0.74))
        self.ax.xaxis.set_major_locator(MaxNLocator(6))
        self.ax.yaxis.set_major_locator(MaxNLocator(6))
        self.ax.set_xlabel("time [s]")
        self.title = self.fig.text(0.5, 0.95, "", fontsize=10, ha="center", va="center")

    def png(self, frame: pd.DataFrame, title: str, series: list[tuple[str, Any]],
            reference: pd.DataFrame | None) -> bytes:
        ax = self.ax
        for line in list(ax.lines):
            line.remove()
        if (legend := ax.get_legend()) is not None:
            legend.remove()
        ax.set_prop_cycle(None)
        for label, values in series:
            line, = ax.plot(frame["time"], values, label=label)
            if reference is not None and label in reference.columns:
                ax.plot(reference["time"], reference[label].astype(float), linestyle="--", color=line.get_color(),
                        label=f"{label} (reference)")
        ax.relim()
        # Nothing finite to scale to (no series, or only NaN): the axes keep whatever limits they had.
        self.scaled = bool(np.isfinite(ax.dataLim.get_points()).all())
        ax.autoscale_view()
        self.title.set_text(title)
        if series:
            ax.legend(fontsize=8, loc="best")
        return _png(self.fig)


# The kept canvas. A batch plots from many threads at once; the drawing holds the GIL throughout, so one plot
# at a time costs no parallelism and spares each thread a figure of its own.
_LOCK = threading.Lock()
_kept: _Canvas | None = None


def timeseries_png(frame: pd.DataFrame, title: str, max_series: int = 8,
                   reference: pd.DataFrame | None = None) -> bytes:
    """The signals over time, a reference's dashed on top.

    Fixed margins, the title as figure text and at most six ticks per axis: ``tight_layout`` and an axes title
    measure every tick label's text box again, which made a 300-sample plot cost 65 ms — a batch renders one per
    model (measured: 34 ms this way on the same frame, 24 ms on the kept canvas).
    """
    global _kept
    series = numeric_series(frame)[:max_series]
    with _LOCK:
        canvas, _kept = _kept or _Canvas(), None
        png = canvas.png(frame, title, series, reference)
        if not canvas.scaled:  # a fresh figure's default axes (0–1), not the last model's limits
            canvas = _Canvas()
            png = canvas.png(frame, title, series, reference)
        _kept = canvas  # not reached if the plot raised: a half-drawn canvas is dropped
    return png


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
