"""Result plots on reused canvases render exactly what a fresh figure renders, from any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from validibot_pipelines.assets import plots

TIME = np.linspace(0, 3, 301)
FRAMES = {
    "lag": (pd.DataFrame({"time": TIME, "y": 6 * (1 - np.exp(-TIME)), "u": np.full_like(TIME, 3.0)}), None),
    "large": (pd.DataFrame({"time": TIME * 100, "q": 1e6 * np.sin(TIME)}), None),
    "reference": (pd.DataFrame({"time": TIME, "y": np.cos(TIME)}),
                  pd.DataFrame({"time": TIME[::10], "y": np.cos(TIME[::10]) + 0.01})),
    "arrays": (pd.DataFrame({"time": TIME[:3], "x": [np.array([1.0, 2.0]), np.array([2.0, 3.0]),
                                                     np.array([3.0, 1.0])]}), None),
    "text only": (pd.DataFrame({"time": TIME[:3], "mode": ["a", "b", "c"]}), None),
    "only NaN": (pd.DataFrame({"time": TIME, "y": np.full_like(TIME, np.nan)}), None),
    "some NaN and inf": (pd.DataFrame({"time": TIME, "y": np.where(TIME > 1, np.nan, TIME),
                                       "z": np.where(TIME > 2, np.inf, -TIME)}), None),
    "many": (pd.DataFrame({"time": TIME, **{f"s{i}": TIME * i for i in range(10)}}), None),
}


def _render(name: str) -> bytes:
    frame, reference = FRAMES[name]
    return plots.timeseries_png(frame, f"fmi/{name}.fmu", reference=reference)


@pytest.fixture
def fresh() -> dict[str, bytes]:
    """Each frame drawn on a figure of its own."""
    return {name: plots._Canvas().png(frame, f"fmi/{name}.fmu", plots.numeric_series(frame)[:8], reference)
            for name, (frame, reference) in FRAMES.items()}


def test_the_kept_canvas_renders_what_a_fresh_one_does(fresh) -> None:  # noqa: ANN001
    order = ["many", "text only", "lag", "reference", "large", "only NaN", "arrays", "lag", "some NaN and inf",
             "text only", "reference", "only NaN", "many"]
    for name in order:
        before = plots._kept
        assert _render(name) == fresh[name], f"{name} drawn after another plot differs from a fresh draw"
        assert plots._kept is not None
        assert plots._kept is before or name in ("text only", "only NaN") or before is None  # kept unless unscaled
    assert fresh["lag"] != fresh["large"]


def test_threads_plotting_at_once_each_get_their_own_plot(fresh) -> None:  # noqa: ANN001
    names = list(FRAMES) * 4
    with ThreadPoolExecutor(8) as pool:
        rendered = list(pool.map(_render, names))
    assert rendered == [fresh[name] for name in names]
