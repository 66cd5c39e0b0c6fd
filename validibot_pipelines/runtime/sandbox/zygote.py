"""The warm parent inside a sandbox: imports a child module once, then forks one fresh child per job.

Started by :mod:`.warm` (inside bubblewrap, or as a scrubbed subprocess in container mode) and driven over its
stdin/stdout, one JSON line per job and per reply. This file is the only code that runs between fork and the
model: it imports nothing of the model's, and it never reads what a child wrote (the trusted worker does,
outside, with the usual checks).

A job line ``{"warm": [modules]}`` only imports them (nothing is forked) and answers ``{"warm": true}``.
Per job: ``fork``; the child starts a new session and session keyring, dies with this parent, gets
``/dev/null`` as stdin and two unnamed files as stdout/stderr, the job's folder as cwd, HOME and TMPDIR, only
the job's environment, the job's rlimits, and then calls the module's ``main()`` as ``python -m module`` would.
Afterwards every process the job left is killed — this parent is a child subreaper, so a daemon that
double-forked is still its descendant —, the System V IPC objects it left are removed, and in bubblewrap mode
the shared ``/tmp`` and ``/dev/shm`` are emptied, so the next job starts from nothing the last one left. This
parent is not dumpable: a child running as the same user can neither ptrace it nor open its ``/proc`` files
(its control pipe among them).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from validibot_pipelines.runtime.sandbox.watch import Peaks, _sample, descendants

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
TAIL_BYTES = 64 * 1024
SAMPLE_SECONDS = 0.05
ENV_WIPE = "VALIDIBOT_ZYGOTE_WIPE"  # set by .warm in bubblewrap mode: /tmp and /dev/shm are the sandbox's own

_libc = ctypes.CDLL(None, use_errno=True)


def _sweep() -> None:
    """Kill and reap every process the last job left (all are descendants of this subreaper)."""
    for _ in range(200):
        left = descendants(os.getpid())[1:]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not left:
            return
        time.sleep(0.005)


def _wipe(keep: Path) -> None:
    """Empty the sandbox's own ``/tmp`` and ``/dev/shm`` (bubblewrap mode), sparing the folder bound into it
    from outside (``keep``, the lane's folder: the launcher empties that one itself)."""
    if os.environ.get(ENV_WIPE) != "1":
        return
    for root in ("/tmp", "/dev/shm"):
        device = os.stat(root).st_dev
        for entry in os.scandir(root):
            path = Path(entry.path)
            if keep == path or keep.is_relative_to(path) or entry.stat(follow_symlinks=False).st_dev != device:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    path.unlink()
                except OSError:
                    pass


IPC_RMID = 0


def _remove_sysv_ipc() -> None:
    """Remove the System V shared memory segments, message queues and semaphore sets the last job left.

    They live in the sandbox's IPC namespace, which every job of this parent shares, and they are no files, so
    neither the sweep nor the wipe of ``/tmp`` and ``/dev/shm`` reaches them: one model could leave data for
    the next under a key both know (a red-team finding; ``tests/test_batch_launch.py``). Every process of the
    job is dead by now (``_sweep``), so removing a segment frees it at once. Listed from ``/proc/sysvipc``
    (this namespace's objects; the id is the second column of each)."""
    removers = {"shm": lambda ident: _libc.shmctl(ident, IPC_RMID, None),
                "msg": lambda ident: _libc.msgctl(ident, IPC_RMID, None),
                "sem": lambda ident: _libc.semctl(ident, 0, IPC_RMID)}
    for kind, remove in removers.items():
        try:
            rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 1 and fields[1].isdigit():
                remove(int(fields[1]))


def _tail(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, size - TAIL_BYTES), os.SEEK_SET)
    text = os.read(fd, TAIL_BYTES).decode("utf-8", errors="replace")
    os.close(fd)
    return (f"({size - TAIL_BYTES:,} earlier bytes left out)\n" + text) if size > TAIL_BYTES else text


def _limit(kind: int, soft: int, hard: int) -> None:
    """Set an rlimit no higher than the hard limit this parent already runs under (an unprivileged process may
    only lower it: inside a container the engine's limits, or the parent's own, can be the lower ones)."""
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


def _in_child(job: dict, out: int, err: int) -> None:
    """Become the job's process (never returns)."""
    code = 70
    try:
        os.setsid()
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        keyctl = SYS_KEYCTL.get(os.uname().machine)
        if keyctl is not None:
            _libc.syscall(keyctl, KEYCTL_JOIN_SESSION_KEYRING, None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, 65536)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        tempfile.tempdir = None
        limits = job["limits"]
        _limit(resource.RLIMIT_AS, limits["as"], limits["as"])
        _limit(resource.RLIMIT_CPU, limits["cpu"], limits["cpu"] + 5)
        _limit(resource.RLIMIT_FSIZE, limits["fsize"], limits["fsize"])
        _limit(resource.RLIMIT_NOFILE, limits["nofile"], limits["nofile"])
        _limit(resource.RLIMIT_CORE, 0, 0)
        if limits.get("nproc"):
            _limit(resource.RLIMIT_NPROC, limits["nproc"], limits["nproc"])
        sys.argv = [job["module"], *job["argv"]]
        code = 71  # from here on: the job's module itself
        try:
            code = sys.modules[job["module"]].main() or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - as `python -m` would: the traceback on stderr, exit 1
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - the job's set-up failed: say why on its stderr (exit 70)
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def import_with_preload(name: str) -> object:
    """Import ``name`` and what it lists in ``PRELOAD`` (the warm part: imported once, forked many times; a
    worker session imports its runners the same way, ``runtime/session.py``)."""
    module = importlib.import_module(name)
    for preload in getattr(module, "PRELOAD", ()):
        importlib.import_module(preload)
    return module


def _run(job: dict) -> dict:
    if "warm" in job:  # a session warming up ahead of its first model (sandbox/warm.py Lane.prestart)
        for name in job["warm"]:
            import_with_preload(str(name))
        return {"warm": True}
    import_with_preload(job["module"])
    out = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    err = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    # Whatever the imports made is the parent's for good: the child's collector then never walks (and so never
    # copies the pages of) those objects; ~1.5 ms less per forked FMI child (measured: 13-14 vs 15 ms).
    gc.freeze()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _in_child(job, out, err)
    pidfd = os.pidfd_open(pid)
    peaks = Peaks()
    deadline, timed_out, status = start + job["timeout"], False, None
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while status is None:
        for target in descendants(pid):
            _sample(target, peaks)
        if poller.poll(SAMPLE_SECONDS * 1000):
            _, status, usage = os.wait4(pid, 0)
            peaks.rss_bytes = max(peaks.rss_bytes, usage.ru_maxrss * 1024)
            peaks.cpu_seconds = max(peaks.cpu_seconds, usage.ru_utime + usage.ru_stime)
            break
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            _signal_session(pid, signal.SIGTERM)
            deadline = time.monotonic() + job.get("grace", 5.0)
        elif timed_out and time.monotonic() > deadline:
            _signal_session(pid, signal.SIGKILL)
    os.close(pidfd)
    seconds = time.monotonic() - start
    _sweep()
    _remove_sysv_ipc()
    _wipe(Path(job["cwd"]).parent)
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"pid": pid, "returncode": returncode, "timed_out": timed_out, "seconds": seconds,
            "vm_peak": peaks.vm_bytes, "rss_peak": peaks.rss_bytes, "cpu": peaks.cpu_seconds,
            "stdout": _tail(out), "stderr": _tail(err)}


def _signal_session(pid: int, sig: signal.Signals) -> None:
    for target in descendants(pid):
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            continue


def main() -> int:
    _libc.prctl(PR_SET_DUMPABLE, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The control channel moves off 0/1, so nothing printed by an import can corrupt it.
    control_in, control_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    reader = os.fdopen(control_in, "r", encoding="utf-8")
    writer = os.fdopen(control_out, "w", encoding="utf-8")
    for module in sys.argv[1:]:  # warm up front what the launcher expects to run
        import_with_preload(module)
    writer.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    writer.flush()
    for line in reader:
        try:
            reply = _run(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - the launcher treats it as a broken sandbox and starts anew
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(reply) + "\n")
        writer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
