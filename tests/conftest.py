"""Shared pytest fixtures: object-store roots backed by a temp folder and by REAL storage servers.

Session-scoped (each server starts at most once per run, and only if a test asks for it):

* ``gcs_endpoint`` -> ``"http://127.0.0.1:N"`` of an in-memory gcp-storage-emulator. While the session runs,
  ``STORAGE_EMULATOR_HOST`` points at it and ``GOOGLE_CLOUD_PROJECT=validibot-test``.
* ``s3_endpoint`` -> ``"http://127.0.0.1:N"`` of a moto server. While the session runs, ``AWS_ENDPOINT_URL``
  points at it with dummy credentials (``testing``/``testing``) and ``AWS_DEFAULT_REGION=us-east-1``.

Both clear the cached stores (``validibot_pipelines.storage.registry._store_for``) so the next ``get_store``
builds a client from the emulator environment.

Function-scoped:

* ``local_root`` -> ``file://`` URI of a fresh temp folder.
* ``gcs_bucket`` -> ``gs://<fresh bucket>`` (created through google-cloud-storage on the emulator).
* ``s3_bucket`` -> ``s3://<fresh bucket>`` (created through boto3 on moto).
* ``store_root`` -> one of the three above, parametrized with ids ``file``, ``gs``, ``s3``: a test using it runs
  once per scheme. Base URIs have no trailing slash; build keys with ``join_uri(root, "a/b.txt")``.

Known gcp-storage-emulator gaps (do not write tests that rely on them against ``gs://``): it does not enforce
``if_generation_match=0`` (create-only writes overwrite), ignores ``start_offset`` when listing, and does not
list in lexicographic name order. Sort listings before comparing.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators import gcs_emulator, moto_s3
from tests.signing_keys import make_service_account_key
from validibot_pipelines.storage.registry import _store_for
from validibot_pipelines.storage.signing import reset_signers

GCS_PROJECT = "validibot-test"


def _bucket_name() -> str:
    # 3-63 chars, lowercase letters/digits/hyphens: valid for both GCS and S3.
    return f"validibot-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """Start gcp-storage-emulator once per session and point google-cloud-storage at it."""
    with (gcs_emulator() as endpoint, pytest.MonkeyPatch.context() as mp,
          tempfile.TemporaryDirectory(prefix="validibot-signer-") as keys):
        mp.setenv("STORAGE_EMULATOR_HOST", endpoint)
        mp.setenv("GOOGLE_CLOUD_PROJECT", GCS_PROJECT)
        # Launches on isolated backends sign V4 URLs (orchestration/access.py): a key made here signs them.
        mp.setenv("VALIDIBOT_GCS_SIGNING_KEY_FILE", str(make_service_account_key(Path(keys))))
        _store_for.cache_clear()
        reset_signers()
        yield endpoint
    _store_for.cache_clear()
    reset_signers()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto once per session and point boto3 at it (dummy credentials, no profile or session token)."""
    with moto_s3() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(var, raising=False)
        _store_for.cache_clear()
        reset_signers()
        yield endpoint
    _store_for.cache_clear()
    reset_signers()


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    """``file://`` URI of an empty temp folder (resolved, so it matches the URIs ``list`` returns)."""
    root = tmp_path.resolve() / "store"
    root.mkdir()
    return root.as_uri()


@pytest.fixture
def gcs_bucket(gcs_endpoint: str) -> str:
    """``gs://name`` of a new, empty bucket on the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = _bucket_name()
    storage.Client(project=GCS_PROJECT, credentials=AnonymousCredentials()).create_bucket(name)
    return f"gs://{name}"


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """``s3://name`` of a new, empty bucket on moto."""
    import boto3

    name = _bucket_name()
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


_ROOT_FIXTURES = {"file": "local_root", "gs": "gcs_bucket", "s3": "s3_bucket"}


@pytest.fixture(params=list(_ROOT_FIXTURES))
def store_root(request: pytest.FixtureRequest) -> str:
    """Base URI of an empty store, once per scheme; servers start only when a gs/s3 case actually runs."""
    return request.getfixturevalue(_ROOT_FIXTURES[request.param])


# --- pipeline fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sample_fmus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample FMU, compiled once per session from the committed C sources."""
    from validibot_pipelines.validators.fmi.samples.build import SAMPLE_FMUS, build_fmu

    out = tmp_path_factory.mktemp("sample-fmus")
    return {name: build_fmu(name, out) for name in SAMPLE_FMUS}


@pytest.fixture(scope="session")
def sample_specs() -> Path:
    """The sample FMUs' specs (beside the FMI validator's sample builder)."""
    from validibot_pipelines.validators.fmi.samples.build import SAMPLES_DIR

    return SAMPLES_DIR


class Pipeline:
    """A real Dagster instance (SQLite in a temp DAGSTER_HOME) with its own landing zone and store."""

    def __init__(self, instance, landing_uri: str, store_uri: str, **settings) -> None:  # noqa: ANN001
        from validibot_pipelines.definitions import build_defs
        from validibot_pipelines.resources import ValidibotSettings

        self.instance = instance
        self.landing_uri = landing_uri
        self.store_uri = store_uri
        self.settings = ValidibotSettings(store_uri=store_uri, landing_uri=landing_uri, **settings)
        self.defs = build_defs(self.settings)

    def drop(self, path: Path, name: str | None = None, spec: str | Path | None = None) -> str:
        """Upload a file into the landing zone (optionally with a sidecar spec), as an author would."""
        from validibot_pipelines.storage import get_store, join_uri

        uri = join_uri(self.landing_uri, name or path.name)
        get_store(uri).upload_file(path, uri)
        if spec is not None:
            text = spec.read_bytes() if isinstance(spec, Path) else spec.encode()
            get_store(uri).write_bytes(uri + ".validation.yaml", text)
        return uri

    def tick(self):  # noqa: ANN201
        from validibot_pipelines.local_runner import tick

        return tick(self.defs, self.instance)

    def partitions(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions("fmu_models"))


@pytest.fixture(autouse=True)
def _uploads_settle_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests drop files and tick at once: a truncated upload is judged by intake, not held as still being
    written (the landing tests that check the settle time set their own)."""
    monkeypatch.setenv("VALIDIBOT_LANDING_SETTLE_SECONDS", "0")


@pytest.fixture(autouse=True)
def _one_run_per_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most tests look at one upload's run (its blocking checks, its own outcome); the grouped sensor runs of
    a burst (the default, 25 per run) are tested in test_grouped_runs.py, which sets its own size."""
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "1")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    from dagster import instance_for_test

    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        yield Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri(),
                       simulation_timeout_seconds=3)


@pytest.fixture(scope="session")
def cad_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample CAD parts (box, cylinder with a hole, two-volume assembly, empty model) as STEP, plus the box
    as STL, generated once per session with Gmsh's OpenCASCADE kernel."""
    from validibot_pipelines.validators.mesh.samples import make_all, make_part

    out = tmp_path_factory.mktemp("cad-parts")
    parts = make_all(out)
    parts["box_stl"] = make_part("box", out, ".stl")
    parts["overlapping_boxes_stl"] = make_part("overlapping_boxes", out, ".stl")
    return parts
