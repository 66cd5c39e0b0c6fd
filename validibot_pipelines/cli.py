"""``validibot`` command line: ``validate`` one file in-process, ``demo`` the whole pipeline, ``validators`` (what is
registered, what images declare), ``build-samples``, ``docker-cleanup`` (remove orphaned worker containers),
``prune`` (retention of execution bundles, ``operations/retention.py``).

Exit codes of ``validate`` (the worst over the models given): 0 success, 1 failed_validation, 2 failed_runtime /
cancelled / bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: ``validate`` starts its worker before this process imports them
    from validibot_pipelines.envelopes import OutputEnvelope

#: Models validated together (one worker launch per step for all of them); larger inputs go in chunks.
CLI_BATCH = 200
#: Exit code per output status (``Status`` values).
EXIT_CODES = {"success": 0, "failed_validation": 1, "failed_runtime": 2, "cancelled": 2}


def human_summary(out: OutputEnvelope) -> str:
    lines = [f"{out.outputs.get('file_name', out.run_id)}: {out.status.value}",
             f"  sha256: {out.outputs.get('sha256', '?')}"]
    validator = _validator_of(out)
    if validator is not None:
        lines += validator.summary(out)
    for result in out.outputs.get("assertions", []):
        mark = "PASS" if result["passed"] else "FAIL"
        lines.append(f"  [{mark}] {result['name']} ({result['severity']}): {result['expr']}"
                     + (f" — {result['error']}" if result.get("error") else ""))
    for msg in out.messages:
        lines.append(f"  {msg.severity.value} {msg.code}: {msg.text}")
    return "\n".join(lines)


def _validator_of(out: OutputEnvelope):  # noqa: ANN202 - a registry.Validator or None
    """The registered validator whose step wrote ``out`` (None for the CLI's own failure envelopes)."""
    from validibot_pipelines.validators.registry import validators

    return next((v for v in validators() if out.validator.type in {s.type for s in v.steps}), None)


def models_in(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The model files named on the command line, folders walked (sorted; hidden entries, symlinks and files no
    validator takes are left out), and what could not be taken, each with the fix."""
    from validibot_pipelines.validators.registry import all_suffixes

    suffixes = tuple(all_suffixes())
    found: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                            and p.name.lower().endswith(suffixes)
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            found += inside
            if not inside:
                problems.append(f"{path}: no model files in this folder ({', '.join(suffixes)})")
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"{path}: no such file; pass the path of a model ({', '.join(suffixes)}) or a folder")
    return found, problems


def _validate(args: argparse.Namespace) -> int:
    """Each model given (files, or folders walked) in turn; exit code = the worst status; ``--json``: one output
    envelope per line. Without ``--spec`` a model's sidecar ``<model>.validation.yaml`` applies, as in the
    landing zone; ``--spec`` applies to every model given."""
    from validibot_pipelines.resources.backends.worker_session import WorkerSession

    # Several models (or a folder): one worker process for all their launches (probe round, simulation
    # round…), started first thing with its sandboxes bare, so that they start while this process still
    # imports the validators and checks the files; told which validators to warm once that is known
    # (runtime/session.py).
    several = len(args.models) > 1 or any(Path(p).is_dir() for p in args.models)
    session = WorkerSession.start(warm=("-",)) if several else None
    try:
        from validibot_pipelines.resources.backends.local_process import LocalProcessLauncher

        return _validate_all(args, session, LocalProcessLauncher(session=session))
    finally:
        if session is not None:
            session.close()


def _validate_all(args: argparse.Namespace, session: Any, backend: Any) -> int:
    from validibot_pipelines.orchestration.batching import together
    from validibot_pipelines.orchestration.models import SPEC_SUFFIX

    models, problems = models_in(args.models)
    for problem in problems:
        print(f"validibot: {problem}", file=sys.stderr)
    if problems or not models:
        return 2
    if args.spec and not Path(args.spec).is_file():
        print(f"validibot: {args.spec}: no such spec file; pass a YAML spec or drop --spec", file=sys.stderr)
        return 2
    if session is not None:
        session.warm_up(_validator_names(models))
    worst = 0
    for start in range(0, len(models), CLI_BATCH):  # each chunk: one worker launch per step, not per model
        chunk = [(m, Path(args.spec) if args.spec else _sidecar(m.with_name(m.name + SPEC_SUFFIX)))
                 for m in models[start:start + CLI_BATCH]]
        for code, out in together(chunk, lambda item, batch: _validate_one(*item, args, batch), backend):
            worst = max(worst, code)
            if out is not None:
                print(out.model_dump_json() if args.json else human_summary(out), flush=True)
    return worst


def _validator_names(models: list[Path]) -> tuple[str, ...]:
    """The validators that will handle ``models``, by file suffix (the worker warms their sandboxes)."""
    from validibot_pipelines.validators.registry import for_suffix

    return tuple(sorted({found[0].name for m in models if (found := for_suffix(m.suffix))}))


def _sidecar(path: Path) -> Path | None:
    """The model's sidecar spec if there is one (a name too long for the file system has none)."""
    try:
        return path if path.is_file() else None
    except OSError:
        return None


def _validate_one(model: Path, spec: Path | None, args: argparse.Namespace,
                  backend: Any) -> tuple[int, OutputEnvelope | None]:
    from validibot_pipelines.orchestration.single import validate_file
    from validibot_pipelines.settings import default_store_uri

    try:
        out = validate_file(model, spec, store_uri=args.store or default_store_uri(),
                            backend=backend, attempt=uuid.uuid4().hex[:8],
                            simulation_timeout_seconds=args.timeout)
    except ValueError as exc:  # e.g. a file type no validator handles
        print(f"validibot: {exc}", file=sys.stderr)
        return 2, None
    except Exception as exc:  # noqa: BLE001 - the system's fault (store unreachable, no permission): no traceback
        out = _runtime_failure(model, exc, args.store or default_store_uri())
    return EXIT_CODES[out.status.value], out


def _runtime_failure(model: Path, exc: Exception, store_uri: str) -> OutputEnvelope:
    """The control plane itself failed (not the model): a failed_runtime envelope that says what to check."""
    from validibot_pipelines import __version__
    from validibot_pipelines.envelopes import OutputEnvelope, Status, ValidatorRef

    out = OutputEnvelope(run_id=f"cli-{uuid.uuid4().hex[:8]}", status=Status.FAILED_RUNTIME,
                         validator=ValidatorRef(id="validibot-cli", type="cli", version=__version__))
    out.error("CONTROL_PLANE_ERROR", f"{model.name}: validation could not run ({type(exc).__name__}: {exc}); "
              f"the model was not judged — check that the store {store_uri} is reachable and writable "
              "(credentials, endpoint, bucket) and try again")
    return out


def _demo(args: argparse.Namespace) -> int:
    from validibot_pipelines.demo import run_demo

    return run_demo(copies=args.copies)


def _build(args: argparse.Namespace) -> int:
    from validibot_pipelines.validators.registry import validators

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in validators() if not args.names or v.name in args.names]
    unknown = sorted(set(args.names) - {v.name for v in validators()})
    if unknown:
        print(f"validibot: no validator {', '.join(unknown)}; registered: {', '.join(v.name for v in validators())}",
              file=sys.stderr)
        return 2
    for validator in chosen:
        for path in validator.demo_samples(out, 1):
            print(path)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from validibot_pipelines.envelopes.schema import export_schemas

    for path in export_schemas(Path(args.out)):
        print(path)
    return 0


def _validators(args: argparse.Namespace) -> int:
    from validibot_pipelines.validators import REGISTERED
    from validibot_pipelines.validators.listing import print_images, print_label, print_registered

    if args.label:
        return print_label(args.label)
    if args.names:
        print(" ".join(REGISTERED))
        return 0
    return print_images(args.images, docker_host=args.docker_host) if args.images is not None else print_registered(
        as_json=args.json)


def _docker_cleanup(args: argparse.Namespace) -> int:
    import docker.errors

    from validibot_pipelines.resources.backends.docker import DockerBackend

    backend = DockerBackend(docker_host=args.docker_host)
    try:
        removed = backend.sweep(remove_all=args.all, grace_seconds=args.grace)
    except docker.errors.DockerException as exc:
        print(f"validibot: cannot reach the container engine ({exc}); start Docker or pass --docker-host / set "
              "DOCKER_HOST", file=sys.stderr)
        return 2
    for item in removed:
        print(f"removed {item.name} {item.container_id[:12]} run={item.run_id} validator={item.validator} "
              f"status={item.status} age={item.age_seconds:.0f}s timeout={item.timeout_seconds:.0f}s")
    print(f"{len(removed)} container(s) removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="validibot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate model files (or every model in folders) in-process and print "
                                        "each output envelope; exit code = the worst status")
    v.add_argument("models", nargs="+", metavar="model", help="model files or folders")
    v.add_argument("--spec", help="validation spec YAML for every model given (default: each model's sidecar "
                                  "<model>.validation.yaml, else DefaultExperiment, all outputs, no assertions)")
    v.add_argument("--json", action="store_true", help="print each output envelope as JSON, one per line")
    v.add_argument("--store", help="object store URI for results (default: $VALIDIBOT_STORE_URI or .validibot/store)")
    v.add_argument("--timeout", type=float, default=300, help="simulation timeout in seconds (default 300)")
    v.set_defaults(func=_validate)
    d = sub.add_parser("demo", help="drop every validator's samples in the landing zone and run the pipeline")
    d.add_argument("--copies", type=int, default=1, help="byte-distinct copies of each sample to validate")
    d.set_defaults(func=_demo)
    b = sub.add_parser("build-samples", help="write each validator's demo samples (with specs) into a folder")
    b.add_argument("out")
    b.add_argument("names", nargs="*", help="validators (default: all)")
    b.set_defaults(func=_build)
    s = sub.add_parser("schemas", help="write the envelopes' JSON Schemas into a folder")
    s.add_argument("out")
    s.set_defaults(func=_schemas)
    r = sub.add_parser("validators", help="list the registered validators (or, with --images, what worker images "
                       "declare in their org.validibot.validator.metadata label)")
    r.add_argument("--json", action="store_true", help="print the registry as JSON")
    r.add_argument("--images", nargs="*", default=None, metavar="IMAGE",
                   help="inspect these images (default: each validator's configured Docker image)")
    r.add_argument("--docker-host", help="engine URL (default: $DOCKER_HOST or the local socket)")
    r.add_argument("--names", action="store_true", help="print the registered names only (for shell loops)")
    r.add_argument("--label", metavar="VALIDATOR", help="print the validator's image label JSON (containers/build)")
    r.set_defaults(func=_validators)
    c = sub.add_parser("docker-cleanup", help="remove worker containers (label org.validibot.managed) left "
                       "behind past their timeout + grace")
    c.add_argument("--docker-host", help="engine URL (default: $DOCKER_HOST or the local socket)")
    c.add_argument("--grace", type=float, default=300, help="seconds past a container's timeout (default 300)")
    c.add_argument("--all", action="store_true", help="remove every managed container, whatever its age")
    c.set_defaults(func=_docker_cleanup)
    from validibot_pipelines.operations.cli import add_migrate_parser
    from validibot_pipelines.operations.cli import add_parser as add_backfill_parser
    from validibot_pipelines.operations.retention_cli import add_parser as add_prune_parser

    add_backfill_parser(sub)
    add_migrate_parser(sub)
    add_prune_parser(sub)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    return args.func(args)


def run() -> None:
    """The ``validibot`` command: :func:`main`, and after ``validate`` an exit without the interpreter's teardown.

    Why: by then every envelope is printed and every store write closed, and tearing down the modules a
    validation loaded (pydantic, celpy, lark, numpy) takes ~70 ms of a model author's CI for nothing. Other
    commands (Dagster's, the demo's) exit normally.
    """
    try:
        code = main()
    except BrokenPipeError:  # whoever read the output left (`| head`): stop quietly, as `cat` does, not a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        os._exit(2)
    if sys.argv[1:2] == ["validate"]:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # the reader went away (`| head`): nothing more to say to it
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
