"""The result plot (signals over time, a reference's dashed on top), drawn by the trusted worker.

Why in the worker and not the control plane: drawing is GIL-bound matplotlib, ~25 ms a model, and the control
plane is one Python process that also writes every Dagster event of a batch — there the plot was the largest
part of a model's cost (``docs/benchmarks.md``). The worker draws it once, beside the time series it already
holds in memory, and stores ``plot.png`` in the execution bundle; the asset embeds those bytes, and a replayed
verdict embeds them again without drawing anything.

The data come from the sandboxed child, checked (``results.py``); drawing them runs no model code. Labels are
variable names the model chose, so ``$`` is escaped: matplotlib would otherwise parse them as mathtext.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from typing import Any

MAX_SERIES = 8
#: What drawing imports: a Dagster run's worker session imports it ahead, while the run's intake runs
#: (``FOR_ASSETS`` in ``worker/__init__.py``).
PRELOAD = ("matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker")


def result_series(result: Any, max_series: int = MAX_SERIES) -> list[tuple[str, Any]]:
    """(label, float values) per plottable signal of a recorded result (a numpy structured array): numbers and
    booleans, an array variable element by element (``y[0]``, ``y[1]``…, row-major); at most ``max_series``."""
    import numpy as np

    series: list[tuple[str, Any]] = []
    for name in result.dtype.names or ():
        if name == "time":
            continue
        values = np.asarray(result[name])
        if values.dtype.kind not in "biuf":
            continue
        if values.ndim > 1:
            flat = values.reshape(len(values), -1).astype(float)
            series += [(f"{name}[{i}]", flat[:, i]) for i in range(flat.shape[1])]
        else:
            series.append((name, values.astype(float)))
    return series[:max_series]


#: A 480-pixel-wide plot shows no more points than this: a longer series is drawn as its minimum and maximum per
#: slice of samples (every peak still shows), so a result of millions of samples draws in milliseconds, not
#: minutes (measured: 4 M samples of 8 signals took 53 s drawn whole).
MAX_POINTS = 4000


def envelope(time: Any, values: Any) -> tuple[Any, Any]:
    """``(time, values)`` as at most :data:`MAX_POINTS` points: per slice its minimum and maximum (NaN ignored,
    a slice of only NaN stays NaN), at the slice's first time; shorter series are returned as they are."""
    import numpy as np

    if len(time) <= MAX_POINTS:
        return time, values
    starts = np.linspace(0, len(time), MAX_POINTS // 2 + 1).astype(np.intp)[:-1]  # strictly increasing
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        low, high = np.fmin.reduceat(values, starts), np.fmax.reduceat(values, starts)
    return np.repeat(np.asarray(time)[starts], 2), np.column_stack((low, high)).ravel()


def _literal(text: str) -> str:
    return text.replace("$", r"\$")


class _Canvas:
    """One time-series figure, kept and drawn again for the next plot.

    Building the figure is a third of a plot's cost (the axes, and the tick objects matplotlib makes on the
    first draw), so the canvas is reused: the previous plot's lines and legend are removed, the colour cycle
    reset and the limits recomputed, which renders byte-for-byte what a fresh figure renders
    (``tests/test_plots.py``). A bare ``Figure`` on the Agg canvas, not pyplot: pyplot's figure registry is
    global state a worker running models side by side would share.
    """

    def __init__(self) -> None:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        self.fig = Figure(figsize=(6, 3), dpi=80)
        self.ax = self.fig.add_axes((0.12, 0.16, 0.85, 0.74))
        self.ax.xaxis.set_major_locator(MaxNLocator(4))
        self.ax.yaxis.set_major_locator(MaxNLocator(4))
        self.ax.set_xlabel("time [s]")
        # The title as figure text with fixed margins: tight_layout and an axes title measure every tick label
        # again (measured: 65 ms against 34 ms a plot on a fresh figure, 24 ms on the kept one).
        self.title = self.fig.text(0.5, 0.95, "", fontsize=10, ha="center", va="center")
        self.scaled = False

    def png(self, time: Any, series: list[tuple[str, Any]], title: str, reference: Any = None) -> bytes:
        import numpy as np

        ax = self.ax
        for line in list(ax.lines):
            line.remove()
        if (legend := ax.get_legend()) is not None:
            legend.remove()
        ax.set_prop_cycle(None)
        reference_names = (reference.dtype.names or ()) if reference is not None else ()
        for label, values in series:
            line, = ax.plot(*envelope(time, values), label=_literal(label))
            if label in reference_names:  # result_series never yields "time"
                ax.plot(*envelope(reference["time"], np.asarray(reference[label], dtype=float)), linestyle="--",
                        color=line.get_color(), label=_literal(f"{label} (reference)"))
        ax.relim()
        # Nothing finite to scale to (no series, or only NaN): the axes keep whatever limits they had.
        self.scaled = bool(np.isfinite(ax.dataLim.get_points()).all())
        ax.autoscale_view()
        self.title.set_text(_literal(title))
        if series:
            ax.legend(fontsize=8, loc="best")
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        return buf.getvalue()


# The kept canvas. Drawing holds the GIL throughout, so one plot at a time costs no parallelism.
_LOCK = threading.Lock()
_kept: _Canvas | None = None

#: A batch of at least this many models draws its plots in a helper process (:class:`_Helper`).
HELPER_FROM = 4
HELPER_TIMEOUT_SECONDS = 60.0
_helper_lock = threading.Lock()
_helper: Any = None  # the running _Helper; False once one has failed (the rest is drawn here)


def draw(time: Any, series: list[tuple[str, Any]], title: str, reference: Any = None) -> bytes:
    """Draw on this process's kept canvas (a fresh one when the data leave nothing to scale the axes to)."""
    global _kept
    with _LOCK:
        canvas, _kept = _kept or _Canvas(), None
        png = canvas.png(time, series, title, reference)
        if not canvas.scaled:  # a fresh figure's default axes (0–1), not the last model's limits
            canvas = _Canvas()
            png = canvas.png(time, series, title, reference)
        _kept = canvas  # not reached if the plot raised: a half-drawn canvas is dropped
    return png


def timeseries_png(result: Any, title: str, reference: Any = None) -> bytes:
    """The plot of a recorded result (numpy structured array with ``time``); ``reference`` is the reference CSV
    as ``fmpy.util.read_csv`` reads it (its signals dashed, in the colour of the result's signal of that name).

    In a batch (:func:`~validibot_pipelines.runtime.batch.running_batch_size` ≥ :data:`HELPER_FROM`) it is
    drawn by a helper process, so ~25 ms of GIL-bound drawing per model runs beside the lanes instead of
    between them (the lanes are threads of this process: their trusted work would otherwise wait for every
    plot). A helper that fails or stalls is stopped and the plot drawn here; the bytes are the same either way.
    A plot matplotlib itself refuses raises here as it would in this process.
    """
    import numpy as np

    args = (np.ascontiguousarray(result["time"]), result_series(result), title, reference)
    helper = _running_helper()
    if helper is not None:
        try:
            if helper.ready():
                return helper.draw(args)
        except _PlotRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken or stalled helper: draw here from now on
            _give_up(helper, exc)
    return draw(*args)


class _PlotRefused(ValueError):
    """matplotlib raised in the helper while drawing this plot (the helper itself is fine)."""


class _Helper:
    """A fork of this worker that draws every plot sent to it over a pipe, one at a time.

    Why a fork, not a fresh interpreter: the worker has matplotlib imported (``FOR_ASSETS``) and has drawn once,
    so a fork is ready in milliseconds. A spawned helper (tried first) imported matplotlib and loaded its fonts
    again: ~0.85 s, in which the lanes of a grouped run drew 15 of its 25 plots themselves (measured).

    Why a fork of a threaded process is safe here: the child runs nothing but :func:`draw` and raw pipe I/O.

    * It is forked with :data:`_LOCK` held, so no lane was half-way through changing the kept canvas, and after
      a draw in this process: every module drawing needs is imported, none half-imported by another thread.
    * Every inherited descriptor but its own end of the pipe is pointed at ``/dev/null`` first: the worker's
      stdout and stderr (someone reads those to EOF: the session's control plane, a test's ``subprocess.run``),
      the sandboxes' control pipes, the worker's end of this pipe. So it holds open nothing whose closing
      someone waits for, and it sees EOF when the worker's end closes, however the worker ended (``os._exit``,
      SIGKILL); a helper stuck in a draw, not reading, ends when its parent does (:func:`_watch_parent`).
      What it has to say goes back over the pipe (a refused plot's error), never to a stream.
    * Its ``sys.stdout`` and ``sys.stderr`` are new file objects on descriptors 1 and 2 (``/dev/null``): the
      worker's, whose locks another thread may have held at the fork (a lane writing a log line), would
      block the first warning matplotlib prints. Objects inherited from the worker are frozen
      (``gc.freeze``), never finalised there, and it ends with ``os._exit``: no ``atexit`` handler, flush or
      thread join of the worker's runs in it.
    * SIGTERM and SIGINT are at their defaults (the worker's handler turns SIGTERM into clean-up of the
      worker's sandboxes), SIGPIPE ignored: a reply to a worker that is gone is an error, and the end.

    Why not ``ProcessPoolExecutor`` or ``multiprocessing``: their children keep both ends of their pipes and
    outlive a worker that ends with ``os._exit``, and ``multiprocessing``'s fork bootstrap closes ``sys.stdin``
    and flushes the standard streams, whose locks another thread may have held at the fork.
    """

    def __init__(self) -> None:
        import multiprocessing.connection
        import os
        import time

        self.conn, child = multiprocessing.connection.Pipe()
        try:
            with _LOCK:
                _warm_in_worker()
                self.pid = os.fork()
                if self.pid == 0:  # the helper: never returns
                    _LOCK.release()  # held by the thread that forked, which is this one here
                    _child_main(child)
        except BaseException:
            self.conn.close()
            raise
        finally:
            child.close()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self._ready = False
        self._reaped = False

    def alive(self) -> bool:
        """Whether the helper still runs (reaps it once it has ended)."""
        import os

        if self._reaped:
            return False
        try:
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            pid = self.pid
        self._reaped = pid == self.pid
        return not self._reaped

    def ready(self) -> bool:
        """Whether the helper has warmed up (its first message); never waits. Until then plots are drawn in
        the worker, so no lane waits for it; one that never warms up is given up."""
        import time

        if self._ready:
            return True
        if not self.lock.acquire(blocking=False):  # another lane is asking or drawing: not this one's turn
            return False
        try:
            if self.conn.poll(0):
                self.conn.recv()  # "ready" (EOFError if it died warming up)
                self._ready = True
            elif time.monotonic() - self.started > HELPER_TIMEOUT_SECONDS:
                raise TimeoutError(f"not warmed up within {HELPER_TIMEOUT_SECONDS:g} s")
        finally:
            self.lock.release()
        return self._ready

    def draw(self, args: tuple) -> bytes:
        with self.lock:
            self._send(args)
            if not self.conn.poll(HELPER_TIMEOUT_SECONDS):
                raise TimeoutError(f"no plot within {HELPER_TIMEOUT_SECONDS:g} s")
            ok, value = self.conn.recv()
        if not ok:
            raise _PlotRefused(value)
        return value

    def _send(self, args: tuple) -> None:
        """Send with SIGPIPE blocked in this thread: a write to a helper that died raises ``BrokenPipeError``
        (given up in :func:`timeseries_png`) instead of killing the worker where SIGPIPE is at its default
        (Python ignores it, but not every process that runs this code does — a pytest worker of CI did). The
        signal the failed write left pending for this thread is taken before the mask is restored."""
        import signal

        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
        try:
            self.conn.send(args)
        finally:
            if signal.SIGPIPE in signal.sigpending():
                signal.sigtimedwait({signal.SIGPIPE}, 0)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def stop(self) -> None:
        """Close the worker's end (the helper ends at EOF), kill it anyway and reap it."""
        import os
        import signal

        self.conn.close()
        if not self._reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._reaped = True


def _warm_in_worker() -> None:
    """With :data:`_LOCK` held: draw once here if nothing has been drawn yet, so every module and font drawing
    needs is loaded before the fork (the first plot of a batch is drawn here anyway)."""
    global _kept
    if _kept is None:
        import numpy as np

        canvas = _Canvas()
        canvas.png(np.arange(2.0), [("y", np.arange(2.0))], "")
        _kept = canvas


def _child_main(conn: Any) -> None:
    """The forked helper's start (see :class:`_Helper`): detach from everything of the worker's, then serve."""
    import gc
    import os
    import signal

    code = 0
    try:
        gc.freeze()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        keep = {conn.fileno(), null}
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
            if fd not in keep:
                try:
                    os.dup2(null, fd)
                except OSError:  # the listing's own descriptor, already closed
                    pass
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the helper
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        _watch_parent(os.getppid())
        _serve(conn)
    except BaseException:  # noqa: BLE001 - the worker sees EOF and draws the rest itself
        code = 1
    finally:
        os._exit(code)


def _watch_parent(parent: int) -> None:
    """End the helper once the worker is gone, even while it is stuck in a draw and not reading its pipe
    (EOF ends it otherwise): a thread of its own polls the parent's pid, twice a second."""
    import os
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="validibot-plot-watch", daemon=True).start()


def _serve(conn: Any) -> None:
    """The helper's loop: say it is ready, then draw what arrives until the worker's end of the pipe closes."""
    conn.send("ready")
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (True, draw(*args))
        except Exception as exc:  # noqa: BLE001 - the worker raises it for this plot; the helper goes on
            reply = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:  # the worker is gone: so is the reason to go on
            return


def _running_helper() -> _Helper | None:
    """The plot helper, started (not waited for) at the first plot of a batch worth one; ``None`` otherwise.

    Not started earlier, with the session (tried: it warmed up during intake, but a replayed backfill, which
    draws nothing, paid its start, and grouped and re-run backfills gained nothing measurable)."""
    global _helper
    from validibot_pipelines.runtime.batch import running_batch_size

    if _helper is False or (_helper is None and running_batch_size() < HELPER_FROM):
        return None
    with _helper_lock:
        if _helper is None:
            try:
                _helper = _Helper()
            except Exception as exc:  # noqa: BLE001 - no fork (a process limit): the plots are drawn here
                _helper = False
                print(f"[validibot-plot] no plot helper ({type(exc).__name__}: {exc}); drawing in the worker",
                      file=sys.stderr, flush=True)
    return _helper or None


def _give_up(helper: _Helper, exc: BaseException) -> None:
    global _helper
    with _helper_lock:
        _helper = False
    print(f"[validibot-plot] the plot helper failed ({type(exc).__name__}: {exc}); drawing in the worker",
          file=sys.stderr, flush=True)
    helper.stop()
