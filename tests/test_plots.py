"""The worker's result plot: the kept canvas renders exactly what a fresh figure renders, from any thread, and
the signals it draws are the ones the result records (arrays element by element, text left out)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from validibot_pipelines.validators.fmi.worker import plot

TIME = np.linspace(0, 3, 301)


def _result(time: np.ndarray, **columns: np.ndarray) -> np.ndarray:
    """A structured array laid out as fmpy records a result (``time`` first, one field per variable)."""
    dtype = [("time", "f8")] + [(name, values.dtype, values.shape[1:]) for name, values in columns.items()]
    result = np.zeros(len(time), dtype=dtype)
    result["time"] = time
    for name, values in columns.items():
        result[name] = values
    return result


RESULTS = {
    "lag": (_result(TIME, y=6 * (1 - np.exp(-TIME)), u=np.full_like(TIME, 3.0)), None),
    "large": (_result(TIME * 100, q=1e6 * np.sin(TIME)), None),
    "reference": (_result(TIME, y=np.cos(TIME)), _result(TIME[::10], y=np.cos(TIME[::10]) + 0.01)),
    "arrays": (_result(TIME[:3], x=np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 1.0]])), None),
    "ints and bools": (_result(TIME[:4], n=np.arange(4, dtype="i4"), b=np.array([True, False, True, True])), None),
    "nothing to plot": (_result(TIME[:3]), None),
    "only NaN": (_result(TIME, y=np.full_like(TIME, np.nan)), None),
    "some NaN and inf": (_result(TIME, y=np.where(TIME > 1, np.nan, TIME), z=np.where(TIME > 2, np.inf, -TIME)), None),
    "many": (_result(TIME, **{f"s{i}": TIME * i for i in range(10)}), None),
    "dollars": (_result(TIME, **{"$\\frac{a}{b}$": TIME}), None),
}


def _render(name: str) -> bytes:
    result, reference = RESULTS[name]
    return plot.timeseries_png(result, f"fmi/{name}.fmu", reference=reference)


@pytest.fixture
def fresh() -> dict[str, bytes]:
    """Each result drawn on a figure of its own."""
    return {name: plot._Canvas().png(result["time"], plot.result_series(result), f"fmi/{name}.fmu", reference)
            for name, (result, reference) in RESULTS.items()}


def test_the_kept_canvas_renders_what_a_fresh_one_does(fresh) -> None:  # noqa: ANN001
    order = ["many", "nothing to plot", "lag", "reference", "large", "only NaN", "arrays", "lag", "some NaN and inf",
             "ints and bools", "nothing to plot", "reference", "only NaN", "many", "dollars"]
    for name in order:
        before = plot._kept
        assert _render(name) == fresh[name], f"{name} drawn after another plot differs from a fresh draw"
        assert plot._kept is not None
        assert plot._kept is before or name in ("nothing to plot", "only NaN") or before is None  # kept unless unscaled
    assert fresh["lag"] != fresh["large"]
    assert fresh["reference"] != plot._Canvas().png(TIME, plot.result_series(RESULTS["reference"][0]),
                                                    "fmi/reference.fmu")  # the reference is drawn on top
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in fresh.values())


def test_threads_plotting_at_once_each_get_their_own_plot(fresh) -> None:  # noqa: ANN001
    names = list(RESULTS) * 4
    with ThreadPoolExecutor(8) as pool:
        rendered = list(pool.map(_render, names))
    assert rendered == [fresh[name] for name in names]


def test_the_series_are_the_recorded_numbers_arrays_element_by_element() -> None:
    result = _result(TIME[:3], x=np.array([[[1, 2], [3, 4]]] * 3, dtype="f8"), n=np.arange(3, dtype="i8"),
                     b=np.array([True, False, True]))
    series = dict(plot.result_series(result))
    assert list(series) == ["x[0]", "x[1]", "x[2]", "x[3]", "n", "b"]  # row-major, time left out
    assert series["x[2]"].tolist() == [3.0, 3.0, 3.0] and series["b"].tolist() == [1.0, 0.0, 1.0]
    assert len(plot.result_series(_result(TIME, **{f"s{i}": TIME for i in range(12)}))) == plot.MAX_SERIES


def test_a_dollar_in_a_name_is_drawn_as_text_not_parsed_as_mathtext() -> None:
    # Unescaped, matplotlib would parse it as mathtext and refuse it (ValueError): the name is drawn literally.
    result = _result(TIME, **{"$\\undefinedcommand$": TIME, "$a^{$": TIME})
    assert plot.timeseries_png(result, "fmi/$x$.fmu").startswith(b"\x89PNG")


# --- the helper process a batch draws in ----------------------------------------------------------------------


@pytest.fixture
def in_a_batch(monkeypatch):  # noqa: ANN001, ANN201
    """This process runs a batch of 10 (as ``execute_batch`` records it); the helper is stopped afterwards."""
    from validibot_pipelines.runtime import batch

    monkeypatch.setattr(batch, "_running", [10])
    monkeypatch.setattr(plot, "_helper", None)
    monkeypatch.setattr(plot, "_kept", None)
    yield
    if plot._helper:
        plot._helper.stop()


def _warmed_helper() -> plot._Helper:
    """The batch's helper once it has warmed up (the first plot of a batch starts it, and is drawn here)."""
    helper = plot._running_helper()
    deadline = time.monotonic() + 60
    while not helper.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper.ready(), "the plot helper did not warm up"
    return helper


def test_a_batch_draws_in_a_helper_process_exactly_what_the_worker_would(in_a_batch, fresh,  # noqa: ANN001
                                                                         monkeypatch) -> None:  # noqa: ANN001
    assert _render("lag") == fresh["lag"]  # the helper is starting: this one is drawn here, no lane waits
    helper = _warmed_helper()
    assert helper.alive() and helper.pid != os.getpid()
    monkeypatch.setattr(plot, "_kept", None)
    for name in ("lag", "reference", "only NaN", "arrays", "many"):
        assert _render(name) == fresh[name]
    assert plot._kept is None  # none of them was drawn in this process
    assert plot._helper is helper  # one helper for the whole batch


def test_no_helper_outside_a_batch_worth_one(monkeypatch) -> None:  # noqa: ANN001
    from validibot_pipelines.runtime import batch

    monkeypatch.setattr(plot, "_helper", None)
    for size in ([], [plot.HELPER_FROM - 1]):
        monkeypatch.setattr(batch, "_running", size)
        assert _render("lag").startswith(b"\x89PNG") and plot._helper is None


def test_a_plot_matplotlib_refuses_raises_and_the_helper_goes_on(in_a_batch, fresh) -> None:  # noqa: ANN001
    bad = _result(TIME, y=TIME)
    with pytest.raises(plot._PlotRefused, match="same first dimension"):
        _warmed_helper().draw((TIME[:5], plot.result_series(bad), "bad.fmu", None))
    assert _render("lag") == fresh["lag"] and plot._helper.alive()


def test_a_dead_helper_is_given_up_and_the_plot_drawn_in_the_worker(in_a_batch, fresh, capfd) -> None:  # noqa: ANN001
    """Also with SIGPIPE at its default (a process that embeds the worker may have it so; CI's pytest worker had
    it): writing to the dead helper's pipe must not kill the worker."""
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        _a_dead_helper_is_given_up(fresh, capfd)
    finally:
        signal.signal(signal.SIGPIPE, previous)


def _a_dead_helper_is_given_up(fresh, capfd) -> None:  # noqa: ANN001
    helper = _warmed_helper()
    assert _render("lag") == fresh["lag"]
    os.kill(helper.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while helper.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _render("reference") == fresh["reference"]  # drawn here instead
    assert plot._helper is False and "the plot helper failed" in capfd.readouterr().err
    assert _render("large") == fresh["large"] and plot._helper is False  # and from then on


def test_no_fork_for_a_helper_means_plots_drawn_in_the_worker(in_a_batch, fresh, monkeypatch, capfd) -> None:  # noqa: ANN001
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _render("lag") == fresh["lag"] and _render("reference") == fresh["reference"]
    assert plot._helper is False and "no plot helper (BlockingIOError" in capfd.readouterr().err


def test_a_helper_forked_while_a_lane_holds_stderr_still_draws(in_a_batch, fresh, monkeypatch) -> None:  # noqa: ANN001
    """The helper is a fork of a threaded worker, and a lock another thread held at the fork stays held in the
    helper. Here a thread is stuck in a write to ``sys.stderr`` (a full pipe nobody reads) when the helper is
    forked, and drawing prints to ``sys.stderr`` (as a matplotlib warning would): the helper writes through
    its own new stream, so it still draws (with the worker's stream it waited forever: the test fails so)."""
    import io
    import threading

    monkeypatch.setattr(plot, "HELPER_TIMEOUT_SECONDS", 10.0)
    plot.draw(*_args("lag"))  # the kept canvas exists: nothing is drawn in this process below
    read_end, write_end = os.pipe()
    stuck = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_end, "w")), write_through=True)  # as sys.stderr
    writer = threading.Thread(target=lambda: stuck.write("x" * (4 << 20)), daemon=True)
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive()  # blocked in the write, holding the stream's lock
    original = plot._Canvas.png

    def noisy(self, *args):  # noqa: ANN001, ANN002, ANN202
        print("matplotlib would warn here", file=sys.stderr)
        return original(self, *args)

    monkeypatch.setattr(plot._Canvas, "png", noisy)
    monkeypatch.setattr(sys, "stderr", stuck)
    try:
        helper = _warmed_helper()
        assert helper.draw(_args("reference")) == fresh["reference"]
    finally:
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        while writer.is_alive():  # let the stuck write finish
            os.read(read_end, 1 << 20)
        os.close(read_end)


def _args(name: str) -> tuple:
    result, reference = RESULTS[name]
    return (np.ascontiguousarray(result["time"]), plot.result_series(result), f"fmi/{name}.fmu", reference)


def test_the_helper_ends_with_its_worker_however_the_worker_ends() -> None:
    """The worker ends with ``os._exit`` (no clean-up runs) or is killed: its helper still goes, also one stuck
    in a draw (not reading its pipe). The worker's stdout and stderr are pipes this test reads to their end, as
    the session's control plane reads a worker's: the helper holds neither, so the read ends with the worker."""
    code = ("import os, sys, time, numpy as np\n"
            "from validibot_pipelines.runtime import batch\n"
            "from validibot_pipelines.validators.fmi.worker import plot\n"
            "batch._running.append(10)\n"
            "r = np.zeros(3, dtype=[('time', 'f8'), ('y', 'f8')]); r['time'] = [0, 1, 2]\n"
            "how = sys.argv[1]\n"
            "worker, draw = os.getpid(), plot.draw  # stuck: the helper's draws never end, the worker's do\n"
            "if how == 'stuck': plot.draw = lambda *a: draw(*a) if os.getpid() == worker else time.sleep(3600)\n"
            "plot.timeseries_png(r, 'x.fmu')\n"
            "while not plot._helper.ready(): pass\n"
            "fds = [os.readlink(f'/proc/{plot._helper.pid}/fd/{fd}') for fd in (1, 2)]\n"
            "if how == 'stuck': plot._helper._send((r['time'], [], 'x', None)); time.sleep(1)\n"
            "print(plot._helper.pid, *fds, flush=True)\n"
            "os._exit(0) if how != 'kill' else os.kill(os.getpid(), 9)\n")
    for how in ("exit", "kill", "stuck"):
        proc = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120)
        helper, *fds = proc.stdout.split()
        assert fds == [os.devnull] * 2, f"the plot helper holds the worker's {fds}"
        helper = int(helper)
        deadline = time.monotonic() + 30
        while _alive(helper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(helper), f"the plot helper outlived a worker that ended by {how}"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_batch_tells_its_worker_code_how_many_models_it_holds() -> None:
    from validibot_pipelines.runtime import batch

    seen = []
    outcomes = batch.execute_batch(["a", "b", "c"], lambda uri: seen.append(batch.running_batch_size()) or "success",
                                   print, n_lanes=2)
    assert seen == [3, 3, 3] and [o.status for o in outcomes] == ["success"] * 3
    assert batch.running_batch_size() == 0


def test_a_long_result_is_drawn_as_its_envelope_every_peak_kept() -> None:
    """Millions of samples are drawn as at most MAX_POINTS points (a minute of drawing otherwise), each slice's
    minimum and maximum, so a one-sample spike still shows; short series are drawn as they are."""
    n = 1_000_003
    t = np.linspace(0, 10, n)
    y = np.sin(t)
    y[123_457] = 50.0  # one sample's spike
    y[900_000:900_010] = np.nan
    tt, yy = plot.envelope(t, y)
    assert len(tt) == len(yy) <= plot.MAX_POINTS
    assert np.nanmax(yy) == 50.0 and np.nanmin(yy) == np.nanmin(y)
    assert np.all(np.diff(tt) >= 0) and tt[0] == t[0]
    assert np.array_equal(plot.envelope(t[:100], y[:100])[1], y[:100])  # short: as it is
    allnan = np.full(n, np.nan)
    assert np.isnan(plot.envelope(t, allnan)[1]).all()
    big = _result(t, y=y)
    assert plot.timeseries_png(big, "fmi/long.fmu").startswith(b"\x89PNG")
