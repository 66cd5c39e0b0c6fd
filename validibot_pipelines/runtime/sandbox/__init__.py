"""Run untrusted work — an FMU's binary, EnergyPlus on a user's model, Gmsh reading a user's part — confined.

One entry point, :func:`run_untrusted`, used by every runner. How it confines depends on where the worker is:

* ``bwrap`` (the default, the local backend): a bubblewrap sandbox (:mod:`.bwrap`) with rlimits and a pids
  cgroup (:mod:`.limits`). If ``bwrap`` is missing the work is refused (:class:`SandboxUnavailable`) unless
  the operator set ``VALIDIBOT_ALLOW_UNSANDBOXED=1``; every envelope then carries a WARNING saying so.
* ``auto`` (set by the Docker, Cloud Run and Modal images): ``bwrap`` inside the container where the container
  lets bubblewrap make its namespaces (podman/Docker with their default seccomp profile do, and so should Cloud
  Run's second generation), else ``container``: the container is the only sandbox and the untrusted child still
  gets a scrubbed environment and the same rlimits. In bwrap mode the model has no network even when the
  container has one (for its signed URLs), and cannot see the trusted worker's processes or files.
* ``container`` (``VALIDIBOT_SANDBOX=container``): as ``auto`` where bubblewrap cannot run.

The child's stdout/stderr go to unnamed temporary files outside its reach (never pipes: a grandchild holding a
pipe open cannot stall the worker) and only a bounded tail is read back. On timeout the whole sandbox is
killed (SIGTERM, grace, SIGKILL to bwrap; the PID namespace takes every descendant with it). Results the child
leaves in its scratch folder are read back only through :func:`read_result` / :func:`copy_result`, which refuse
symlinks, non-regular files, paths leaving the scratch folder and files over a size limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.runtime.process import ChildResult
from validibot_pipelines.runtime.sandbox import bwrap
from validibot_pipelines.runtime.sandbox.limits import preexec, sandbox_cgroup, which_limit
from validibot_pipelines.runtime.sandbox.watch import Watcher, kill_survivors

ENV_MODE = "VALIDIBOT_SANDBOX"
ENV_OPT_OUT = "VALIDIBOT_ALLOW_UNSANDBOXED"
GRACE_SECONDS = 5.0
TAIL_BYTES = 64 * 1024
LIMIT_FIXES = {
    "memory": "it exceeded the sandbox's address-space limit of {memory}; a malformed or self-referencing model "
              "can do that — repair the model, or raise VALIDIBOT_SANDBOX_MEMORY_BYTES (settings "
              "sandbox_memory_bytes) if it really needs more",
    "cpu": "it used more than its CPU-time limit of {cpu} s; make it finish sooner or raise the timeout",
    "file_size": "it tried to write a file larger than the sandbox's limit of {file}; write less output or "
                 "raise sandbox_max_file_bytes",
    "processes": "it started more processes or threads than the sandbox allows ({procs}); a model must not "
                 "spawn processes — remove that from its code",
    "open_files": "it opened more files than the sandbox allows ({files}); close files it no longer needs",
}


class SandboxUnavailable(RuntimeError):
    """Untrusted work cannot be confined here: the system's fault, named with the fix."""


class UnsafeResult(ValueError):
    """A file the child left is a symlink, not a regular file, outside its scratch folder or too large."""


@dataclass
class SandboxResult(ChildResult):
    mode: str = "bwrap"
    limit: str | None = None  # which limit the process hit, if it failed because of one
    peak_memory_bytes: int = 0
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def limit_text(self) -> str:
        """Why the limit was hit and the fix, in words (see :data:`LIMIT_FIXES`)."""
        lim = self.limits
        return LIMIT_FIXES[self.limit or "memory"].format(
            memory=_size(lim.memory_bytes), cpu=lim.cpu_seconds or "2 x timeout", file=_size(lim.max_file_bytes),
            procs=lim.max_processes, files=lim.max_open_files)


def _size(n: int) -> str:
    return f"{n / 1024**3:g} GiB" if n >= 1024**3 else f"{n / 1024**2:g} MiB"


def mode() -> str:
    """``bwrap``, ``container`` or ``unsandboxed`` (opt-out); raises :class:`SandboxUnavailable` otherwise."""
    wanted = os.environ.get(ENV_MODE, "bwrap").strip().lower() or "bwrap"
    if wanted == "container":
        return "container"
    if wanted == "auto":  # the worker images: bubblewrap inside the container where it can run, else container
        return "bwrap" if bwrap.works() else "container"
    if wanted != "bwrap":
        raise SandboxUnavailable(f"{ENV_MODE}={wanted!r} is not a sandbox mode; use 'bwrap' (default), 'auto' "
                                 "(the worker images) or 'container'")
    if bwrap.bwrap_path():
        return "bwrap"
    if os.environ.get(ENV_OPT_OUT) == "1":
        return "unsandboxed"
    raise SandboxUnavailable(
        "bubblewrap (bwrap) is not installed, so untrusted models cannot be confined and none is run; install "
        f"it (Debian: apt-get install bubblewrap, or scripts/install-system-deps), or set {ENV_OPT_OUT}=1 to run "
        "models without a sandbox (they can then read this machine's secrets and stored results)")


def warning() -> str | None:
    """The WARNING every envelope carries when untrusted work runs without a sandbox, else ``None``."""
    try:
        unsandboxed = mode() == "unsandboxed"
    except SandboxUnavailable:  # the run is refused with its own message; nothing to warn about
        return None
    if unsandboxed:
        return (f"untrusted model code ran WITHOUT a sandbox ({ENV_OPT_OUT}=1, bwrap missing): it could read "
                "this machine's environment and files; install bubblewrap and unset the variable")
    return None


def _tail(fh: IO[bytes]) -> str:
    """The last :data:`TAIL_BYTES` of a child's output file, however much it wrote."""
    fh.flush()
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - TAIL_BYTES))
    text = fh.read().decode("utf-8", errors="replace")
    return (f"({size - TAIL_BYTES:,} earlier bytes left out)\n" + text) if size > TAIL_BYTES else text


def run_untrusted(cmd: list[str], *, scratch: Path, timeout: float, limits: SandboxLimits | None = None,
                  readonly: Iterable[Path] = (), env: dict[str, str] | None = None, grace: float = GRACE_SECONDS,
                  on_start: Callable[[subprocess.Popen], None] | None = None) -> SandboxResult:
    """Run ``cmd`` confined, with ``scratch`` as its only writable folder; never raises for the child's doings.

    ``env`` holds the only variables the child gets besides a minimal PATH/HOME/locale (:func:`bwrap.sandbox_env`).
    Raises :class:`SandboxUnavailable` when no sandbox can be had (see :func:`mode`).
    """
    limits = limits or SandboxLimits()
    how = mode()
    scratch = scratch.resolve()
    child_env = bwrap.sandbox_env(scratch, env)
    argv = bwrap.command(cmd, scratch=scratch, readonly=readonly, env=child_env) if how == "bwrap" else cmd
    start = time.monotonic()
    with sandbox_cgroup(limits) as group, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=scratch, env=child_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=preexec(limits, timeout, group))
        if on_start is not None:
            on_start(proc)
        watcher = Watcher(proc.pid, group.pids if group.path else None)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc, grace)
        except BaseException:  # the worker is being stopped: never leave the sandbox running on its own
            _kill(proc)
            proc.wait()
            raise
        finally:
            peaks = watcher.stop()
            kill_survivors(peaks, proc.pid)
        pids_hit, oom = group.hit_max(), group.oom_killed()
        stdout, stderr = _tail(out), _tail(err)
    returncode = proc.returncode
    if how == "bwrap" and returncode is not None and returncode > 128 and (returncode - 128) in _SIGNALS:
        returncode = -(returncode - 128)  # bwrap reports a child killed by signal N as exit 128+N
    signum = -returncode if returncode is not None and returncode < 0 else None
    failed = timed_out or returncode != 0
    limit = None
    if failed and not timed_out:
        limit = which_limit(signum=signum, text=stderr[-8000:], peak_vm_bytes=peaks.vm_bytes,
                            cpu_used=peaks.cpu_seconds, limits=limits, timeout=timeout, pids_max_hit=pids_hit,
                            oom_killed=oom, peak_rss_bytes=peaks.rss_bytes)
    return SandboxResult(returncode=returncode, timed_out=timed_out, pid=proc.pid, stdout=stdout, stderr=stderr,
                         seconds=time.monotonic() - start, mode=how, limit=limit,
                         peak_memory_bytes=peaks.rss_bytes, limits=limits)


_SIGNALS = {s.value for s in signal.Signals}


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen, grace: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()


def _open_result(scratch: Path, path: Path, max_bytes: int) -> int:
    """An fd on a file the child left, after refusing links, special files and files over ``max_bytes``.

    The sandbox is dead when this runs (its PID namespace died with bwrap), so nothing swaps the path meanwhile.
    """
    if path.is_symlink():
        raise UnsafeResult(f"{path.name} is a symbolic link, not a result file")
    parent = Path(os.path.realpath(path.parent))
    if not parent.is_relative_to(os.path.realpath(scratch)):
        raise UnsafeResult(f"{path.name} lies behind a link leading outside the sandbox's folder")
    try:
        fd = os.open(parent / path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeResult(f"{path.name} cannot be read safely ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeResult(f"{path.name} is not a regular file")
    if info.st_size > max_bytes:
        os.close(fd)
        raise UnsafeResult(f"{path.name} is {info.st_size:,} bytes, over the {max_bytes:,} bytes a result may "
                           "have")
    return fd


def read_result(scratch: Path, path: Path, max_bytes: int) -> bytes:
    """The bytes of a (small) file the child left; raises :class:`UnsafeResult` or ``FileNotFoundError``."""
    with os.fdopen(_open_result(scratch, path, max_bytes), "rb") as fh:
        return fh.read(max_bytes)


def copy_result(scratch: Path, path: Path, dest: Path, max_bytes: int) -> Path:
    """Copy a result file out of the scratch folder in chunks (same checks as :func:`read_result`)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(_open_result(scratch, path, max_bytes), "rb") as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    return dest


def limit_failure(result: SandboxResult, prefix: str, name: str,
                  who: str = "the model's process") -> tuple[str, str] | None:
    """``(code, text)`` when the child failed because it hit a sandbox limit, e.g. ``FMU_MEMORY_LIMIT``."""
    if result.limit is None:
        return None
    return f"{prefix}_{result.limit.upper()}_LIMIT", f"{name}: {who} was stopped: {result.limit_text()}"
