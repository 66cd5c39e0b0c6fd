"""Small plots of result time series (control plane: reads data files only, runs no model code)."""

from __future__ import annotations

import io

import pandas as pd


def timeseries_png(frame: pd.DataFrame, title: str, max_series: int = 8) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in frame.columns if c != "time"][:max_series]
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    for column in columns:
        ax.plot(frame["time"], frame[column].astype(float), label=column)
    ax.set_xlabel("time [s]")
    ax.set_title(title, fontsize=10)
    if columns:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
