"""One worker process, several batch launches in turn: the local backend's worker session.

Why: a validation is several rounds of worker launches (probe, then simulation), and each fresh worker pays
its interpreter start-up and — per lane — a warm sandbox's start (bubblewrap, an interpreter, fmpy's imports)
before the first model runs. With ``VALIDIBOT_WORKER_SESSION=1`` the worker stays up between rounds: it reads
one request per line on stdin, ``{"manifest": "<batch manifest URI>", "run_id": "<batch id>", "pipes": {<Pipes
bootstrap variables>}}``,
runs that manifest exactly as a ``VALIDIBOT_BATCH_URI`` launch would (``entrypoint.run_manifest``) on lanes whose
warm sandboxes it keeps, and answers ``{"manifest": …, "returncode": n}`` on stdout. A request
``{"input": "<input envelope URI>", "run_id": …, "pipes": {…}}`` runs one envelope as a ``VALIDIBOT_INPUT_URI``
launch would, every log line through its Pipes session, on the first lane (a Dagster run's single-model
launches: its probe and its simulation share the warm sandbox). It ends at end of input.

What is shared is only what a batch already shares: the trusted worker and its lanes' sandbox instances, one
model after the other, every model still in a fresh forked child with its own folder (``sandbox/warm.py``).
Every manifest keeps its own Pipes session (the request carries its bootstrap variables) and its own log: after
each manifest the worker writes :data:`END_MARK` and the manifest to stderr, so the launcher can tell which
lines were whose.

``VALIDIBOT_WORKER_WARM=fmi,mesh`` (validator names) starts the lanes' sandboxes at once, in the background, with
the sandbox limits of ``VALIDIBOT_SANDBOX_*`` and those validators' sandboxed modules imported
(``SANDBOXED`` in ``validators/<name>/worker``); ``fmi:assets`` (a Dagster run's session) also imports the
worker's ``FOR_ASSETS`` (the FMI plot); ``VALIDIBOT_WORKER_WARM=-`` starts them with nothing imported.
A request line ``{"warm": ["fmi"]}`` (no answer) does the same later, into the sandboxes already started:
``validibot validate`` starts its session bare before it even knows which validators its files need (the
sandboxes' start overlaps the CLI's own imports), then names them, so by the first model the sandboxes are up
with those modules imported. A lane whose prestart failed just starts at its first model.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import IO

ENV_SESSION = "VALIDIBOT_WORKER_SESSION"
ENV_WARM = "VALIDIBOT_WORKER_WARM"
END_MARK = "[validibot-session] end of "


def serve(requests: IO[str] = sys.stdin, replies: IO[str] = sys.stdout) -> int:
    """Answer every request line until the end of input; 0 unless a request line was unreadable."""
    from validibot_pipelines.runtime import batch
    from validibot_pipelines.runtime.entrypoint import run_input, run_manifest
    from validibot_pipelines.runtime.sandbox import warm

    pool = [warm.Lane() for _ in range(batch.lanes(1 << 16))]
    names = [name.strip() for name in os.environ.get(ENV_WARM, "").split(",") if name.strip()]
    if names:
        _prestart(pool, [name for name in names if name != "-"])
    status = 0
    try:
        for line in requests:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if isinstance(request, dict) and isinstance(request.get("warm"), list):
                    _prestart(pool, [str(name) for name in request["warm"]])
                    continue
                kind = "input" if "input" in request else "manifest"
                target, pipes = str(request[kind]), dict(request.get("pipes") or {})
                run_id = str(request.get("run_id") or "-")
            except (ValueError, KeyError, TypeError) as exc:
                print(f"[validibot-session] unreadable request {line[:200]!r}: {exc}", file=sys.stderr, flush=True)
                replies.write(json.dumps({"error": f"unreadable request: {exc}"}) + "\n")
                replies.flush()
                status = 2
                continue
            run = run_input if kind == "input" else run_manifest
            code = run(target, run_id=run_id, pipes_params=pipes, pool=pool)
            print(f"{END_MARK}{target}", file=sys.stderr, flush=True)
            replies.write(json.dumps({kind: target, "returncode": code}) + "\n")
            replies.flush()
    finally:  # side by side: each sandbox takes ~40 ms to tear down, and the launcher waits for this exit
        closing = [threading.Thread(target=lane.close, name="validibot-lane-close") for lane in pool]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()
    return status


def _prestart(pool: list, names: list[str]) -> None:
    """Start every lane's sandbox in the background (if it is not running yet), with ``names``' sandboxed
    modules imported (none: just started); and import ``names``' runners here, also in the background (the
    first model of a round would otherwise import fmpy and pyarrow on its lane: ~60 ms)."""
    from validibot_pipelines.settings import sandbox_limits_from_env
    from validibot_pipelines.validators import runner_modules, sandboxed_modules

    if runners := runner_modules(names):
        threading.Thread(target=_import_runners, args=(runners,), daemon=True, name="validibot-preload").start()
    modules = sandboxed_modules(names)
    if names and not modules:  # validators whose models need nothing warm (XML): nothing to start for them
        return
    limits = sandbox_limits_from_env()

    def start(lane: object) -> None:
        try:
            lane.prestart(limits, modules)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - not fatal: the lane's first model starts it as usual
            print(f"[validibot-session] could not start a sandbox ahead: {exc}", file=sys.stderr, flush=True)

    for lane in pool:
        threading.Thread(target=start, args=(lane,), daemon=True, name="validibot-prestart").start()


def _import_runners(modules: list[str]) -> None:
    """Import each runner module and what it lists in ``PRELOAD`` (trusted worker code and its libraries)."""
    from validibot_pipelines.runtime.sandbox.zygote import import_with_preload

    for name in modules:
        try:
            import_with_preload(name)
        except Exception as exc:  # noqa: BLE001 - not fatal: the first model imports it as usual (and says why)
            print(f"[validibot-session] could not import {name} ahead: {exc}", file=sys.stderr, flush=True)
