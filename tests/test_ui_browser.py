"""The Dagster UI in a real headless Chromium: the asset graph and an asset's partition page of a materialized
instance show the expected assets, metadata and checks; a model is found by name with the partition filter and
its page holds its version history; the validation report lists every model. Screenshots are saved (path
printed) for a human look.

The instance is materialized in-process first (sensor tick + runs, SQLite DAGSTER_HOME); then only
``dagster-webserver`` starts against it (no daemon, so nothing changes under the browser).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.dagster_server import dagster_server, graphql

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
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (sample_fmus["first_order_lag"], lag_v2,
                                                                    sample_fmus["multi_output"])}
    versions = {LAG: [sha[sample_fmus["first_order_lag"]], sha[lag_v2]], MULTI: [sha[sample_fmus["multi_output"]]]}
    assert len(set(sha.values())) == 3
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
        _wait_for_code_location(port)
        shots = Path(os.environ.get("VALIDIBOT_SCREENSHOT_DIR") or root / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield {"url": f"http://127.0.0.1:{port}", "outcomes": outcomes, "versions": versions,
               "shots": shots, "root": root}


def _wait_for_code_location(port: int, timeout: float = 180) -> None:
    """Wait until the webserver has loaded the code location; fail with its load error (a page without the
    definitions would only time out, test after test, on texts that never come)."""
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {"
             " __typename ... on PythonError { message } } } } } }")
    deadline = time.time() + timeout
    while True:
        entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if loaded and len(loaded) == len(entries):
            errors = [e["locationOrLoadError"] for e in loaded
                      if (e["locationOrLoadError"] or {}).get("__typename") != "RepositoryLocation"]
            assert not errors, f"code location failed to load: {errors}"
            return
        if time.time() > deadline:
            pytest.fail(f"code location not loaded within {timeout:g} s: {entries}")
        time.sleep(0.5)


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


def _click(driver, find) -> None:  # noqa: ANN001
    """Click the element ``find(driver)`` returns, skipping the community dialog should it pop up over it."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def clicked(d) -> bool:  # noqa: ANN001
        _dismiss_dialog(d)
        try:
            find(d).click()
        except (ElementClickInterceptedException, StaleElementReferenceException):
            return False
        return True

    WebDriverWait(driver, 30, poll_frequency=0.3).until(clicked)


def _open_and_wait(driver, url: str, texts: list[str], timeout: float = 90) -> str:  # noqa: ANN001
    """Load a page of the single-page app and wait until every text is rendered; returns the page text."""
    driver.get(url)
    return _wait_for_texts(driver, texts, timeout)


def _wait_for_texts(driver, texts: list[str], timeout: float = 30) -> str:  # noqa: ANN001
    """Wait (without reloading) until every text is on the current page; returns the page text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, body = driver.current_url, ""

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
    partition = ui["outcomes"][LAG].partition_key
    assert partition == LAG  # a model's partition is its name in the landing zone
    url = f"{ui['url']}/assets/fmu_simulation?view=partitions&partition={quote(partition, safe='')}"
    text = _open_and_wait(browser, url, [partition, "timeseries_uri", "fmu_guid", "output_values", "success"])
    # the latest materialization is of the model's second version: its run id starts with that checksum
    first, second = ui["versions"][LAG]
    assert second[:16] in text and first[:16] not in text, text
    _shot(browser, ui, "fmu_simulation-partition.png")
    checks = _open_and_wait(browser, f"{ui['url']}/assets/fmu_simulation?view=checks",
                            ["simulation_succeeded", "cel_assertions"])
    assert "Passed" in checks or "passed" in checks.lower()
    _shot(browser, ui, "fmu_simulation-checks.png")
    overview = _open_and_wait(browser, f"{ui['url']}/assets/fmu_intake?view=overview",
                              ["Owners", "validation", "validibot/validator: fmi", "validibot/stage: intake",
                               "The uploaded FMU, checked in the control plane"])  # owners, tags, description
    # The sensors that can materialize it (upload_sensor, output_sensor) are listed, or folded as "2 sensors";
    # the automation panel renders after the rest of the page, so wait for it before judging.
    overview = _wait_for_texts(browser, ["fmi_validation", "sensor"])
    assert "upload_sensor" in overview or "2 sensors" in overview, overview
    _shot(browser, ui, "fmu_intake-overview.png")


def test_partition_filter_finds_a_model_by_name_and_shows_its_versions(ui, browser):  # noqa: ANN001
    """Partitions tab: "Filter by name…" with the model's name lists only its partition; the partition shows its
    latest version (data version = SHA-256) and its history holds both versions, newest first."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    first, second = ui["versions"][LAG]
    _open_and_wait(browser, f"{ui['url']}/assets/fmu_intake?view=partitions", [LAG, MULTI, "Materialized (2)"])
    wait = WebDriverWait(browser, 30, poll_frequency=0.3)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder^='Filter by name']"))
    _click(browser, lambda _d: box)
    box.send_keys("hvac/lag")

    def listed(d) -> list:  # noqa: ANN001 - the partitions shown in the list (their visible labels)
        return [e for e in d.find_elements(By.XPATH, f"//span[normalize-space()='{LAG}' or normalize-space()="
                                                        f"'{MULTI}']") if e.is_displayed()]

    wait.until(lambda d: [e.text for e in listed(d)] == [LAG])
    _click(browser, lambda d: listed(d)[0])
    text = _wait_for_texts(browser, ["Latest materialization", "View all historical events (2)", "sha256", second])
    assert f"partition={quote(LAG, safe='')}" in browser.current_url, browser.current_url
    assert first not in text, text  # the page shows the model's latest version
    assert MULTI not in text, text  # and the list is still filtered
    _shot(browser, ui, "fmu_intake-partition-filtered.png")
    _click(browser, lambda d: d.find_element(By.XPATH, "//*[starts-with(normalize-space(text()), 'Show tags')]"))
    text = wait.until(lambda d: "data_version" in (t := d.find_element(By.TAG_NAME, "body").text) and t)
    assert re.search(rf"\bdata_version\s+{second}\b", text), text  # the data version is the model's SHA-256

    _click(browser, lambda d: d.find_element(By.XPATH, "//button[contains(normalize-space(), 'View all historical "
                                                       "events')]"))

    def history(d):  # noqa: ANN001, ANN202 - the "Historical events" dialog, once it is open
        return next((e for e in d.find_elements(By.CSS_SELECTOR, "[role=dialog]")
                     if f"Historical events for {LAG}" in e.text), None)

    dialog = wait.until(history)
    assert dialog.text.count("Materialization") == 2, dialog.text  # one intake materialization per version
    triangles = "//*[@role='dialog']//button[contains(@class, 'disclosureTriangle')]"
    assert len(browser.find_elements(By.XPATH, triangles)) == 2
    shown = []
    for i in range(2):  # each row folds out its event's metadata, one row at a time
        _click(browser, lambda d, i=i: d.find_elements(By.XPATH, triangles)[i])
        new = wait.until(lambda d: [f for f in re.findall(r"sha256\s+([0-9a-f]{64})", history(d).text)
                                    if f not in shown])
        shown.extend(new)
    assert shown == [second, first], shown  # both versions, newest first
    _shot(browser, ui, "fmu_intake-partition-history.png")


def test_validation_report_shows_a_row_per_model(ui, browser):  # noqa: ANN001
    """The report's table metadata: one row per model by name, each at its current version's SHA-256."""
    text = _open_and_wait(browser, f"{ui['url']}/assets/validation_report",
                          ["validation_report", "reports", "report", "Show schema", LAG, MULTI])
    assert "Row count" in text, text
    tables = browser.execute_script("""
        const found = [...document.querySelectorAll('table')].filter(t =>
            [...t.querySelectorAll(':scope > thead > tr > th')].some(c => c.innerText.trim() === 'sha256'));
        if (found.length)  // for the screenshot: the report's row of the metadata table, its key in view
            found[0].closest('tr').querySelector('td').scrollIntoView({block: 'center', inline: 'start'});
        return found.map(t => ({
            head: [...t.querySelectorAll(':scope > thead > tr > th')].map(c => c.innerText.trim()),
            rows: [...t.querySelectorAll(':scope > tbody > tr')]
                  .map(r => [...r.children].map(c => c.innerText.trim()))}));""")
    assert len(tables) == 1, tables
    (table,) = tables
    rows = {row[table["head"].index("model")]: dict(zip(table["head"], row, strict=True)) for row in table["rows"]}
    assert sorted(rows) == [LAG, MULTI], table
    for model, row in rows.items():
        assert row["validator"] == "fmi" and row["status"] == "success", row
        assert row["sha256"] == ui["versions"][model][-1], row  # the model's current version
    _shot(browser, ui, "validation_report.png")
