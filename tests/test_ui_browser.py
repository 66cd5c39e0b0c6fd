"""The Dagster UI in a real headless Chromium: the asset graph and an asset's partition page of a materialized
instance show the expected assets, metadata and checks. Screenshots are saved (path printed) for a human look.

The instance is materialized in-process first (sensor tick + runs, SQLite DAGSTER_HOME); then only
``dagster-webserver`` starts against it (no daemon, so nothing changes under the browser).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster_server import dagster_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="chromium/chromedriver missing: run scripts/install-system-deps")


LAG, MULTI = "hvac/lag.fmu", "plant/multi.fmu"  # models are partitions keyed by their path in the landing zone


@pytest.fixture(scope="module")
def ui(tmp_path_factory, sample_fmus, sample_specs) -> Iterator[dict]:  # noqa: ANN001
    """Two models in folders; ``hvac/lag.fmu`` then gets a second version (new bytes, same name), so its
    partition has two intake materializations with two data versions. ``validation_report`` is materialized
    last, so its table has a row per model."""
    from dagster import DagsterInstance

    from tests.conftest import Pipeline
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    root = tmp_path_factory.mktemp("ui")
    home, vhome = root / "dagster_home", root / "validibot"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    lag_v2 = build_fmu("first_order_lag", root / "fmus", variant="v2")  # same model, byte-different (GUID)
    versions = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (sample_fmus["first_order_lag"], lag_v2)]
    assert versions[0] != versions[1]
    with DagsterInstance.from_config(str(home)) as instance:
        pipe = Pipeline(instance, (vhome / "landing").as_uri(), (vhome / "store").as_uri())
        pipe.drop(sample_fmus["first_order_lag"], name=LAG, spec=sample_specs / "first_order_lag.validation.yaml")
        pipe.drop(sample_fmus["multi_output"], name=MULTI, spec=sample_specs / "multi_output.validation.yaml")
        outcomes = {o.partition_key: o for o in pipe.tick()}
        assert sorted(outcomes) == [LAG, MULTI] and all(o.success for o in outcomes.values()), outcomes
        pipe.drop(lag_v2, name=LAG)  # the next version of hvac/lag.fmu (its spec sidecar is still there)
        (second,) = pipe.tick()
        assert second.partition_key == LAG and second.success, second
        assert sorted(pipe.partitions()) == [LAG, MULTI]
        report = pipe.defs.resolve_job_def("validation_report_job").execute_in_process(instance=instance)
        assert report.success
    env = {**os.environ, "DAGSTER_HOME": str(home), "VALIDIBOT_HOME": str(vhome)}
    with dagster_server(["dagster-webserver"], env, root / "webserver.log") as port:
        shots = Path(os.environ.get("VALIDIBOT_SCREENSHOT_DIR") or root / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield {"url": f"http://127.0.0.1:{port}", "outcomes": outcomes, "versions": {LAG: versions},
               "shots": shots, "root": root}


@pytest.fixture(scope="module")
def browser(ui) -> Iterator:  # noqa: ANN001
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1600,1000",
                 f"--user-data-dir={ui['root'] / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _dismiss_dialog(driver) -> None:  # noqa: ANN001
    """A first visit shows a "Join the Dagster community" dialog over the page (after a delay): skip it."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        if button.is_displayed():
            button.click()


def _open_and_wait(driver, url: str, texts: list[str], timeout: float = 90) -> str:  # noqa: ANN001
    """Load a page of the single-page app and wait until every text is rendered; returns the page text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    body = ""

    def rendered(d) -> bool:  # noqa: ANN001
        nonlocal body
        _dismiss_dialog(d)
        body = d.find_element(By.TAG_NAME, "body").text
        return all(t in body for t in texts)

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(rendered)
    except Exception:  # noqa: BLE001 - report what was on screen instead of a bare timeout
        driver.save_screenshot(str(Path(os.environ.get("VALIDIBOT_SCREENSHOT_DIR", "/tmp")) / "ui-failure.png"))
        Path("/tmp/ui-failure.html").write_text(driver.page_source)
        pytest.fail(f"{url}: missing {[t for t in texts if t not in body]}; page text: {body[:1500]}")
    return body


def _shot(driver, ui, name: str) -> Path:  # noqa: ANN001
    time.sleep(3)  # let the page settle (the graph layout, the delayed dialog) before the picture; not an assertion
    _dismiss_dialog(driver)
    time.sleep(0.5)
    path = ui["shots"] / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000  # a rendered page, not an empty canvas
    return path


def _location(ui) -> str:  # noqa: ANN001
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"})
    req = urllib.request.Request(f"{ui['url']}/graphql", data=query.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        (entry,) = json.loads(resp.read())["data"]["workspaceOrError"]["locationEntries"]
    return entry["name"]


def test_asset_graph_shows_the_fmi_group(ui, browser):  # noqa: ANN001
    url = f"{ui['url']}/locations/__repository__@{_location(ui)}/asset-groups/fmi"
    # every node of the group, its checks passing (intake 1/1, probe 1/1, simulation 3/3) and both partitions
    text = _open_and_wait(browser, url, ["fmi_spec", "fmu_intake", "fmu_probe", "fmu_simulation", "3 / 3 Passed",
                                         "2 partitions"])
    assert text.count("1 / 1 Passed") == 2, text
    _shot(browser, ui, "asset-graph-fmi.png")


def test_partition_page_shows_metadata_and_checks(ui, browser):  # noqa: ANN001
    partition = ui["outcomes"]["first_order_lag.fmu"].partition_key
    url = f"{ui['url']}/assets/fmu_simulation?view=partitions&partition={partition}"
    text = _open_and_wait(browser, url, [partition, "timeseries_uri", "fmu_guid", "output_values"])
    assert "first_order_lag.fmu" in text or "success" in text
    _shot(browser, ui, "fmu_simulation-partition.png")
    checks = _open_and_wait(browser, f"{ui['url']}/assets/fmu_simulation?view=checks",
                            ["simulation_succeeded", "cel_assertions"])
    assert "Passed" in checks or "passed" in checks.lower()
    _shot(browser, ui, "fmu_simulation-checks.png")
    overview = _open_and_wait(browser, f"{ui['url']}/assets/fmu_intake?view=overview",
                              ["Owners", "validation", "validibot/validator: fmi", "validibot/stage: intake",
                               "The uploaded FMU, checked in the control plane"])  # owners, tags, description
    # The sensors that can materialize it (upload_sensor, output_sensor) are listed, or folded as "2 sensors".
    assert "fmi_validation" in overview and ("upload_sensor" in overview or "2 sensors" in overview), overview
    _shot(browser, ui, "fmu_intake-overview.png")
