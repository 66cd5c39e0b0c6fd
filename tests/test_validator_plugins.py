"""Validators are plugins: each is one folder under ``validators/``, registered once, and nothing else names one.

These checks keep it that way: no module outside ``validators/`` imports a validator's package or spells a
validator's name in code; each registered folder has every part a validator needs; the worker side of every
validator loads without ``dagster``; everything generic (definitions, jobs, partitions, resources, the Docker
sweep, code versions, Modal functions, runners) covers every registered validator.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from validibot_pipelines.validators import REGISTERED, folder, image_lists, modal_functions, worker_runners
from validibot_pipelines.validators.registry import validators

PACKAGE = Path(__file__).resolve().parents[1] / "validibot_pipelines"
#: What a validator folder holds (validators/__init__.py says what each is for).
PARTS = ("__init__.py", "spec.py", "settings.py", "intake.py", "envelopes.py", "worker/__init__.py", "launch.py",
         "assets.py", "validator.py", "modal_app.py", "image/requirements.txt")
#: Worker-side modules of a validator: they run in worker images, which have no dagster.
WORKER_SIDE = ("spec", "settings", "intake", "envelopes")


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, kinds) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _own_words() -> str:
    """What belongs to one validator: its name, its file suffixes and its asset names (as a regex)."""
    suffixes = [re.escape(s) for v in validators() for s in v.suffixes]
    assets = [key.path[-1] for v in validators() for asset in v.assets() for key in asset.keys]
    return "|".join([*REGISTERED, *suffixes, *assets])


def _names_a_validator(tree: ast.AST) -> list[tuple[int, str]]:
    """Imports of a validator package, identifiers with a validator's name as a word (``fmi_backend``), and code
    strings holding its name, a suffix or an asset name (``"mesh"``, ``"validibot-fmi"``, ``".fmu"``,
    ``"fmu_intake"``). Docstrings and comments may talk about them."""
    words = "|".join(REGISTERED)
    word = re.compile(rf"(?<![a-z])({_own_words()})(?![a-z])", re.IGNORECASE)
    docs, hits = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            hits += [(node.lineno, m) for m in modules if re.match(rf"validibot_pipelines\.validators\.({words})\b", m)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if word.search(node.value):
                hits.append((node.lineno, node.value[:80]))
        elif isinstance(node, ast.Name | ast.Attribute | ast.arg):
            ident = {ast.Name: "id", ast.Attribute: "attr", ast.arg: "arg"}[type(node)]
            if re.search(rf"(^|_)({words})(_|$)", getattr(node, ident).lower()):
                hits.append((node.lineno, getattr(node, ident)))
    return hits


def test_no_module_outside_validators_names_a_validator() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "validators":
            continue
        found += [f"{path.relative_to(PACKAGE)}:{line}: {what!r}" for line, what in
                  _names_a_validator(ast.parse(path.read_text()))]
    assert found == [], "generic code must derive from the registry:\n" + "\n".join(found)


def test_the_scan_catches_what_it_must() -> None:
    """The check above would fail on each of the shapes it exists to refuse."""
    code = ('from validibot_pipelines.validators.fmi import launch\n'
            'def f(mesh_backend):\n    """fmi in a docstring is fine"""\n'
            '    return {"energyplus": 1, "x": "validibot-xml", "y": (".fmu", "cad_file")}\n')
    assert [what for _, what in _names_a_validator(ast.parse(code))] == [
        "validibot_pipelines.validators.fmi", "mesh_backend", "energyplus", "validibot-xml", ".fmu", "cad_file"]


@pytest.mark.parametrize("name", REGISTERED)
def test_each_registered_validator_is_one_complete_folder(name: str) -> None:
    missing = [part for part in PARTS if not (folder(name) / part).is_file()]
    assert missing == [], f"validators/{name}/ lacks {missing}"
    (validator,) = [v for v in validators() if v.name == name]
    assert validator.partitions.name and validator.suffixes and validator.steps
    steps = {step.type for step in validator.steps}
    assert steps <= set(worker_runners()) and steps <= set(modal_functions()), "every step has a runner and a Modal fn"
    assert image_lists(name).pip, "its image lists its pinned dependencies"
    assets = [key.path[-1] for asset in validator.assets() for key in asset.keys]
    assert validator.intake_asset == assets[0] and all(a.group_names_by_key[k] == name
                                                       for a in validator.assets() for k in a.keys)


def test_suffixes_and_step_types_belong_to_one_validator_each() -> None:
    suffixes = [s for v in validators() for s in v.suffixes]
    steps = [s.type for v in validators() for s in v.steps]
    assert len(suffixes) == len(set(suffixes)) and len(steps) == len(set(steps))
    assert [v.name for v in validators()] == list(REGISTERED)


def test_the_worker_side_of_every_validator_loads_without_dagster() -> None:
    modules = [f"validibot_pipelines.validators.{name}.{part}" for name in REGISTERED for part in WORKER_SIDE]
    modules += [m for name in REGISTERED for m in _worker_modules(name)]
    modules += ["validibot_pipelines.runtime.entrypoint", "validibot_pipelines.runtime.registry"]
    probe = ("import importlib, sys\n"
             f"for m in {modules!r}:\n    importlib.import_module(m)\n"
             "print(sorted(k for k in sys.modules if k == 'dagster' or k.startswith('dagster.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def _worker_modules(name: str) -> list[str]:
    """Every worker module that imports without its engine's native library loaded (not the sandboxed child)."""
    found = []
    for path in sorted((folder(name) / "worker").glob("*.py")):
        if path.stem not in ("__init__", "child"):
            found.append(f"validibot_pipelines.validators.{name}.worker.{path.stem}")
    return found


def test_generic_machinery_covers_every_registered_validator() -> None:
    from validibot_pipelines.definitions import defs
    from validibot_pipelines.operations.versions import validator_code_version
    from validibot_pipelines.resources.settings import ValidibotSettings

    job_names = {job.name for job in defs.jobs}
    resources = set(defs.resources)
    sweep = defs.resolve_sensor_def("docker_orphan_sweep")
    limits = ValidibotSettings().intake_limits()
    for validator in validators():
        assert validator.job_name in job_names and validator.backend_resource in resources
        assert validator.backend_resource in sweep.required_resource_keys
        assert validator_code_version(validator.name) == validator.code_version()
        assert validator.name in limits
        assert defs.resolve_assets_def(f"{validator.name}_spec") is not None


def test_the_docker_sweep_sensor_evaluates_with_every_validators_backend() -> None:
    """The sweep sensor takes each registered validator's backend resource (none of them Docker here)."""
    from dagster import SkipReason, build_sensor_context

    from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
    from validibot_pipelines.sensors.docker_sweep import docker_orphan_sweep

    # A context manager: the local backend has a run lifecycle (its worker session ends with the run).
    with build_sensor_context(resources={v.backend_resource: LocalSubprocessBackend() for v in validators()}) as ctx:
        result = docker_orphan_sweep(ctx)
    assert isinstance(result, SkipReason) and "no DockerBackend configured" in result.skip_message
