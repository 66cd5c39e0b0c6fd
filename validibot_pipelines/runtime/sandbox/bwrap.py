"""The bubblewrap command line: what an untrusted process may see, and nothing more.

New user, PID, network, IPC, UTS (and cgroup) namespaces; ``--die-with-parent`` and ``--new-session``; no
capabilities and no further user namespaces; a read-only view of the system (``/usr`` and the few ``/etc``
files the dynamic loader needs), the interpreter, the venv and this package; one writable scratch folder
(plus read-only inputs); an empty ``/tmp``; an environment holding only what the tool needs. The store, the
landing zone, ``DAGSTER_HOME``, the home folder and every credential are simply not there.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

#: The folder holding the ``validibot_pipelines`` package (an editable checkout or site-packages).
PACKAGE_DIR = Path(__file__).resolve().parents[2]
#: Only what the dynamic loader and locale-aware libraries read; never the whole of /etc (it may hold secrets).
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts",
               "nsswitch.conf", "os-release")
TMP_BYTES = 512 * 1024 * 1024
SHM_BYTES = 64 * 1024 * 1024
TOP_LEVEL = ("lib", "lib32", "lib64", "libx32", "bin", "sbin")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _python_roots() -> list[Path]:
    """Interpreter, venv and package folders, without nesting duplicates (a venv's python may link into pyenv)."""
    candidates = [Path(sys.base_prefix), Path(sys.prefix), PACKAGE_DIR,
                  Path(sys.executable).resolve().parent.parent]
    roots: list[Path] = []
    for path in sorted({p.resolve() for p in candidates if p.exists()}, key=lambda p: len(p.parts)):
        if path == Path("/usr") or any(path.is_relative_to(r) for r in roots) or path.is_relative_to("/usr"):
            continue
        roots.append(path)
    return roots


def sandbox_env(scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed process: no inherited variable, so no credential, ever."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(PACKAGE_DIR.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        # One thread per numeric library: the sandbox has a process/thread cap and an address-space cap, and
        # OpenBLAS reserves memory per thread it starts.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


_SET_HOSTNAME = True  # False where the container refuses sethostname (see works)


@functools.cache
def works() -> bool:
    """Whether the sandbox this module builds can start here (once per process): inside a container bubblewrap
    needs the engine to allow unprivileged user namespaces, which gVisor-based runtimes (Cloud Run's first
    generation, Modal) may not."""
    if bwrap_path() is None:
        return False
    import subprocess
    import tempfile

    global _SET_HOSTNAME
    with tempfile.TemporaryDirectory(prefix="validibot-bwrap-probe-") as scratch:
        folder = Path(scratch)
        # Docker's and podman's default seccomp profiles refuse sethostname without CAP_SYS_ADMIN: inside a
        # container the sandbox then keeps its own (unshared) UTS namespace with the container's hostname.
        for set_hostname in (True, False):
            _SET_HOSTNAME = set_hostname
            try:
                done = subprocess.run(command(["/bin/true"], scratch=folder, env=sandbox_env(folder, None)),
                                      capture_output=True, timeout=20, check=False)
            except (OSError, subprocess.TimeoutExpired):
                break
            if done.returncode == 0:
                return True
    _SET_HOSTNAME = True
    return False


def command(cmd: list[str], *, scratch: Path, readonly: Iterable[Path] = (), env: dict[str, str]) -> list[str]:
    """``cmd`` wrapped in bwrap; ``scratch`` is the only writable place, ``readonly`` paths are visible read-only."""
    exe = bwrap_path()
    if exe is None:
        raise FileNotFoundError("bwrap")
    args = [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", *(["--hostname", "validibot-sandbox"] if _SET_HOSTNAME else []),
            "--uid", "65534", "--gid", "65534", "--ro-bind", "/usr", "/usr"]
    for name in TOP_LEVEL:
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", str(top.readlink()), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    for name in ETC_ENTRIES:
        entry = Path("/etc") / name
        if entry.exists():
            args += ["--ro-bind", str(entry), str(entry)]
    # Sized tmpfs mounts: an unsized one may take half the machine's RAM (the memory cgroup counts them too).
    args += ["--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
             "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    for root in _python_roots():
        args += ["--ro-bind", str(root), str(root)]
    args += ["--bind", str(scratch), str(scratch)]
    for path in readonly:  # after the scratch bind, so inputs inside scratch become read-only
        args += ["--ro-bind", str(path), str(path)]
    args += ["--chdir", str(scratch), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *cmd]
