"""The sandbox's own promises, one at a time, with plain Python as the untrusted program."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from validibot_pipelines.envelopes import OutputEnvelope, Status, ValidatorRef
from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.envelopes.bounds import MAX_ENVELOPE_BYTES, MAX_TEXT_CHARS, bound_output
from validibot_pipelines.runtime.sandbox import (
    SandboxUnavailable,
    UnsafeResult,
    copy_result,
    mode,
    read_result,
    run_untrusted,
)


def run_py(code: str, scratch: Path, **kwargs):  # noqa: ANN003, ANN201
    scratch.mkdir(parents=True, exist_ok=True)
    return run_untrusted([sys.executable, "-c", code], scratch=scratch, timeout=kwargs.pop("timeout", 30), **kwargs)


def test_the_sandbox_sees_no_store_no_home_no_network_and_no_other_process(tmp_path: Path) -> None:
    secret_dir = tmp_path / "store"
    secret_dir.mkdir()
    (secret_dir / "verdict.json").write_text("{}")
    with socket.socket() as server:  # a service on the host's loopback the model would love to reach
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"""
import json, os, socket
seen = {{"store": os.path.exists({str(secret_dir)!r}), "root_home": os.path.exists("/root/.bashrc"),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "uid": os.getuid(),
        "env": sorted(os.environ), "hostname": os.uname().nodename}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2); seen["net"] = True
except OSError:
    seen["net"] = False
try:
    open("/usr/evil", "w"); seen["usr_writable"] = True
except OSError:
    seen["usr_writable"] = False
print(json.dumps(seen))
"""
        result = run_py(code, tmp_path / "scratch")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["store"] is False and seen["root_home"] is False
    assert seen["net"] is False and seen["usr_writable"] is False
    assert max(seen["pids"]) < 10  # its own PID namespace: the worker and the control plane are not there
    assert seen["uid"] == 65534 and seen["hostname"] == "validibot-sandbox"
    assert "AWS_SECRET_ACCESS_KEY" not in seen["env"] and "DAGSTER_HOME" not in seen["env"]


def test_inputs_are_read_only_and_only_scratch_is_writable(tmp_path: Path) -> None:
    model = tmp_path / "inputs" / "model.fmu"
    model.parent.mkdir()
    model.write_bytes(b"original")
    code = f"""
import pathlib
p = pathlib.Path({str(model)!r})
try:
    p.write_bytes(b"changed"); print("wrote")
except OSError:
    print("refused")
pathlib.Path("out.txt").write_text("mine")
"""
    result = run_py(code, tmp_path / "scratch", readonly=[model])
    assert result.stdout.strip() == "refused"
    assert model.read_bytes() == b"original"
    assert (tmp_path / "scratch" / "out.txt").read_text() == "mine"


def test_secrets_of_the_worker_are_not_inherited_in_container_mode(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_SANDBOX", "container")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit")
    result = run_py("import os, resource; print(os.environ.get('AWS_SECRET_ACCESS_KEY'), "
                    "resource.getrlimit(resource.RLIMIT_AS)[0])", tmp_path / "s",
                    limits=SandboxLimits(memory_bytes=2 * 1024**3))
    assert result.mode == "container"
    assert result.stdout.split() == ["None", str(2 * 1024**3)]


def test_timeout_kills_every_descendant_and_does_not_wait_for_their_pipes(tmp_path: Path) -> None:
    code = ("import subprocess, time\n"
            "subprocess.Popen(['sleep', '271.5'], start_new_session=True)\n"
            "time.sleep(600)\n")
    result = run_py(code, tmp_path / "s", timeout=2, grace=1)
    assert result.timed_out and result.seconds < 10
    from tests.processes import processes_running

    assert processes_running("271.5") == []


def test_an_unknown_mode_or_a_missing_bwrap_is_refused_with_the_fix(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_SANDBOX", "chroot")
    with pytest.raises(SandboxUnavailable, match="not a sandbox mode"):
        mode()
    monkeypatch.setenv("VALIDIBOT_SANDBOX", "bwrap")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        mode()
    monkeypatch.setenv("VALIDIBOT_ALLOW_UNSANDBOXED", "1")
    assert mode() == "unsandboxed"


def test_result_files_are_read_only_when_regular_inside_scratch_and_small(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outside = tmp_path / "other-models-verdict.json"
    outside.write_text('{"status": "success"}')
    (scratch / "ok.json").write_text("{}")
    (scratch / "link.json").symlink_to(outside)
    (scratch / "dir").symlink_to(tmp_path)
    os.mkfifo(scratch / "fifo.json")
    (scratch / "big.bin").write_bytes(b"x" * 2000)
    assert read_result(scratch, scratch / "ok.json", 100) == b"{}"
    for name in ("link.json", "fifo.json", "big.bin"):
        with pytest.raises(UnsafeResult):
            read_result(scratch, scratch / name, 1000)
    with pytest.raises(UnsafeResult):
        copy_result(scratch, scratch / "dir" / "other-models-verdict.json", tmp_path / "copy", 1000)
    with pytest.raises(FileNotFoundError):
        read_result(scratch, scratch / "missing.json", 100)


def test_envelopes_stay_small_whatever_the_model_produced() -> None:
    out = OutputEnvelope(run_id="r", validator=ValidatorRef(id="v", type="fmi-simulation", version="1"),
                         status=Status.FAILED_VALIDATION)
    for i in range(60_000):
        out.error("SPEC_UNKNOWN_VARIABLE", f"model.fmu: input 'u{i}' does not exist in the FMU")
    out.error("FMU_VALIDATION", "x" * 22_000_000)
    out.outputs = {"fmu_log": ["L" * 100_000] * 5000}
    bounded = bound_output(out)
    raw = bounded.model_dump_json()
    assert len(raw) < MAX_ENVELOPE_BYTES and len(raw) < 1_000_000
    unknown = [m for m in bounded.messages if m.code == "SPEC_UNKNOWN_VARIABLE"]
    assert len(unknown) == 21 and "59,980 more SPEC_UNKNOWN_VARIABLE" in unknown[-1].text
    assert all(len(m.text) <= MAX_TEXT_CHARS for m in bounded.messages)
    assert bounded.status == Status.FAILED_VALIDATION


def test_an_envelope_over_the_cap_drops_its_outputs_and_says_so() -> None:
    out = OutputEnvelope(run_id="r", validator=ValidatorRef(id="v", type="fmi-simulation", version="1"),
                         status=Status.SUCCESS, outputs={"output_values": {f"y{i}": 1.0 for i in range(600_000)}})
    bounded = bound_output(out)
    assert bounded.status == Status.FAILED_VALIDATION and bounded.outputs == {}
    assert any(m.code == "ENVELOPE_TOO_LARGE" and "output_variables" in m.text for m in bounded.messages)


def test_a_result_too_large_to_load_names_the_file_and_the_fix(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import numpy as np

    from validibot_pipelines.validators.fmi.worker import results as simulate

    scratch = tmp_path / "sandbox"
    scratch.mkdir()
    rows = np.zeros(1000, dtype=[("time", "f8"), ("y", "f8")])
    rows["time"] = np.arange(1000)
    np.save(scratch / "result.npy", rows)
    f8 = np.dtype("f8")
    columns = {"time": f8, "y": f8}
    monkeypatch.setattr(simulate, "MAX_RESULT_BYTES", 4096)
    too_large = r"result\.npy is 16,128 bytes, over the 4,096 .*raise step_size or name fewer output"
    with pytest.raises(ValueError, match=too_large):
        simulate.load_result(scratch, columns, {"simulation_time_reached": 999.0})
    monkeypatch.setattr(simulate, "MAX_RESULT_BYTES", 1 << 20)
    assert len(simulate.load_result(scratch, columns, {"simulation_time_reached": 999.0})) == 1000
    with pytest.raises(ValueError, match="claimed to reach"):  # the child's word must match its own data
        simulate.load_result(scratch, columns, {"simulation_time_reached": 5000.0})
    with pytest.raises(ValueError, match="lacks columns z"):
        simulate.load_result(scratch, {"time": f8, "z": f8}, {"simulation_time_reached": 999.0})
    with pytest.raises(ValueError, match="type and shape"):  # a scalar Real recorded as a 62-M-element array
        simulate.load_result(scratch, {"time": f8, "y": np.dtype("i4")}, {"simulation_time_reached": 999.0})
    rows["time"][-1] = np.nan
    np.save(scratch / "result.npy", rows)
    with pytest.raises(ValueError, match="NaN"):
        simulate.load_result(scratch, columns, {"simulation_time_reached": None})


def test_the_memory_limit_holds_for_the_sandbox_as_a_whole(tmp_path: Path) -> None:
    """Eight children of 300 MiB each pass a 512 MiB per-process limit; the sandbox's memory cgroup stops them."""
    from validibot_pipelines.runtime.sandbox.limits import SandboxCgroup

    probe = SandboxCgroup(16, 1 << 30)
    can_cap = probe.memory_path is not None
    probe.remove()
    if not can_cap:
        pytest.skip("this machine gives the worker no writable memory cgroup (the README says rlimits only then)")
    code = ("import os\nkids = []\nfor i in range(8):\n    pid = os.fork()\n    if pid == 0:\n"
            "        b = bytearray(300 << 20)\n        for j in range(0, len(b), 4096): b[j] = 1\n"
            "        os._exit(0)\n    kids.append(pid)\n"
            "print(sum(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) == -9 for k in kids))\n")
    result = run_py(code, tmp_path / "s", limits=SandboxLimits(memory_bytes=512 << 20))
    assert int(result.stdout.strip() or 0) >= 1  # some children were killed for memory, not all 2.4 GiB granted


def test_the_sandbox_gets_its_own_session_keyring(tmp_path: Path) -> None:
    import ctypes

    keyctl = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
    if keyctl is None:
        pytest.skip("no keyctl syscall number known for this architecture")
    libc = ctypes.CDLL(None, use_errno=True)
    ours = libc.syscall(keyctl, 0, -3, 1)  # KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create
    code = (f"import ctypes; print(ctypes.CDLL(None).syscall({keyctl}, 0, -3, 1))")
    result = run_py(code, tmp_path / "s")
    assert result.returncode == 0 and int(result.stdout) != ours


def test_a_work_folder_thousands_of_levels_deep_is_removed(tmp_path: Path) -> None:
    from validibot_pipelines.runtime.entrypoint import remove_tree

    root = tmp_path / "work"
    deep = root
    deep.mkdir()
    os.chdir(root)
    try:
        for _ in range(3000):  # relative steps: an absolute path this deep would exceed PATH_MAX
            os.mkdir("d")
            os.chdir("d")
        Path("leftover.bin").write_bytes(b"x" * 1000)
    finally:
        os.chdir(tmp_path)
    messages: list[str] = []
    remove_tree(root, messages.append)
    assert not root.exists() and messages == []


def test_auto_mode_uses_bubblewrap_where_it_runs_and_the_container_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker images set ``VALIDIBOT_SANDBOX=auto``: bwrap when a probe sandbox starts, else container mode."""
    from validibot_pipelines.runtime import sandbox
    from validibot_pipelines.runtime.sandbox import bwrap

    monkeypatch.setenv("VALIDIBOT_SANDBOX", "auto")
    bwrap.works.cache_clear()
    assert sandbox.mode() == ("bwrap" if bwrap.bwrap_path() else "container")
    bwrap.works.cache_clear()
    monkeypatch.setattr(bwrap, "bwrap_path", lambda: None)
    assert sandbox.mode() == "container"
    bwrap.works.cache_clear()
