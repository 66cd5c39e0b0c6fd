"""VALIDIBOT_ENV separation: test and prod get disjoint prefixes, and a non-prod config never resolves to a
production location (store, landing zone, settings resource, Modal volumes)."""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from validibot_pipelines.environments import EnvironmentIsolationError, modal_volume_name, scoped_uri
from validibot_pipelines.settings import default_landing_uri, default_store_uri


def test_each_environment_gets_its_own_prefix(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_STORE_URI", "gs://acme-validibot/store")
    monkeypatch.setenv("VALIDIBOT_LANDING_URI", "s3://acme-uploads/landing")
    monkeypatch.setenv("VALIDIBOT_ENV", "test")
    test_store, test_landing = default_store_uri(), default_landing_uri()
    monkeypatch.setenv("VALIDIBOT_ENV", "prod")
    prod_store, prod_landing = default_store_uri(), default_landing_uri()
    assert (test_store, prod_store) == ("gs://acme-validibot/store/test", "gs://acme-validibot/store/prod")
    assert (test_landing, prod_landing) == ("s3://acme-uploads/landing/test", "s3://acme-uploads/landing/prod")
    for a, b in [(test_store, prod_store), (test_landing, prod_landing)]:
        assert not a.startswith(b + "/") and not b.startswith(a + "/")
    monkeypatch.delenv("VALIDIBOT_ENV")  # dev: the embedded default keeps the URIs as given
    assert default_store_uri() == "gs://acme-validibot/store"


@pytest.mark.parametrize("uri", [
    "gs://validibot-prod/store", "s3://acme-production-models/landing", "gs://shared/prod/store",
    "s3://acme-models/x",  # listed in VALIDIBOT_PROD_BUCKETS
])
@pytest.mark.parametrize("env", ["test", "dev"])
def test_non_prod_never_resolves_to_a_prod_uri(uri, env, monkeypatch):  # noqa: ANN001
    from validibot_pipelines.resources import ValidibotSettings

    monkeypatch.setenv("VALIDIBOT_PROD_BUCKETS", "s3://acme-models, gs://other-prod-bucket")
    monkeypatch.setenv("VALIDIBOT_ENV", env)
    monkeypatch.setenv("VALIDIBOT_STORE_URI", uri)
    with pytest.raises(EnvironmentIsolationError, match="production location"):
        default_store_uri()
    with pytest.raises(EnvironmentIsolationError):
        scoped_uri(uri)
    with pytest.raises(ValidationError, match="production location"):  # explicit resource config too
        ValidibotSettings(store_uri=uri, landing_uri="gs://validibot-it/landing")
    monkeypatch.setenv("VALIDIBOT_ENV", "prod")  # production itself may use it
    assert default_store_uri().startswith(uri)


def test_unknown_environment_is_an_error(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_ENV", "staging")
    with pytest.raises(ValueError, match="use one of dev, test, prod"):
        default_store_uri()


def test_modal_volumes_follow_the_environment(monkeypatch):  # noqa: ANN001
    monkeypatch.delenv("ENERGYPLUS_USE_TEST_VOLUME", raising=False)
    monkeypatch.setenv("VALIDIBOT_ENV", "test")
    assert modal_volume_name("fmi-cache", "FMI_USE_TEST_VOLUME") == "fmi-cache-test"
    import validibot_pipelines.validators.energyplus.modal_app as app

    assert importlib.reload(app).VOLUME_NAME == "energyplus-outputs-test"
    monkeypatch.setenv("VALIDIBOT_ENV", "prod")
    assert importlib.reload(app).VOLUME_NAME == "energyplus-outputs"
