"""The Airflow UI as a data engineer meets it: a real deployment, a real browser.

Airflow runs as in production (api-server, scheduler, dag-processor and triggerer with
the LocalExecutor) on a free port, over a fresh warehouse database and a small sandbox
world served in-process. Through the REST API v2 the test checks that every DAG file
imports, triggers the everything-now DAG and waits for it; the sandbox's Mailchimp list
must then hold exactly the world's recent buyers. Headless Chromium then signs in
through the login form, opens that run in the DAG's grid, and the page itself must name
the DAG and the run and show it, and each of its tasks, as successful.

The screenshot is kept under ``.omnicanal/test/ui/`` for a person to look at.
Deselect with ``pytest -m 'not ui'``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from omnicanal.orchestration.airflow_server import AirflowAPI, AirflowCluster, drop_metadata_db
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

pytestmark = pytest.mark.ui

DAG_ID = "omnicanal_pipeline"
LIST = "omnicanal-demo"
PEOPLE = 80
PARSE_TIMEOUT = 180.0
RUN_TIMEOUT = 900.0
PAGE_TIMEOUT = 60.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".omnicanal" / "test" / "ui"


def _task_logs(cluster: AirflowCluster, run_id: str, task_id: str, lines: int = 30) -> str:
    """The end of a task's log files, for a failure message."""
    folder = cluster.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    tails = []
    for log in sorted(folder.rglob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(tails) or f"(no log under {folder})"


def _run_report(cluster: AirflowCluster, run_id: str) -> str:
    tis = cluster.api.task_instances(DAG_ID, run_id)
    states = "\n".join(f"  {ti['task_id']}: {ti['state']}" for ti in tis)
    failed = [ti["task_id"] for ti in tis if ti["state"] not in ("success", "skipped", None)]
    logs = "\n".join(_task_logs(cluster, run_id, task_id) for task_id in failed)
    return f"task states:\n{states}\n{logs}\ncomponent logs: {cluster.logs_dir}"


def _import_errors_once_all_parsed(api: AirflowAPI, dags_dir: Path) -> list[dict]:
    """The import errors, once the dag-processor has been through every DAG file: each
    file has given a DAG or an import error (an empty list earlier proves nothing)."""
    files = {path.name for path in dags_dir.glob("*.py") if not path.name.startswith("_")}
    assert files, f"no DAG files in {dags_dir}"
    deadline = time.monotonic() + PARSE_TIMEOUT
    while True:
        parsed = {Path(dag["fileloc"]).name for dag in api.get("dags", limit=1000)["dags"]}
        errors = api.import_errors()
        if files <= parsed | {Path(error["filename"]).name for error in errors}:
            return errors
        if time.monotonic() > deadline:
            pytest.fail(
                f"after {PARSE_TIMEOUT:.0f}s the dag-processor had not parsed "
                f"{sorted(files - parsed)} (import errors: {errors})"
            )
        time.sleep(1)


def _sign_in(browser: WebDriver, cluster: AirflowCluster, path: str) -> None:
    """Open ``path``; the UI sends us to its login form, which sends us back."""
    wait = WebDriverWait(browser, PAGE_TIMEOUT)
    browser.get(f"{cluster.url}{path}")
    wait.until(ec.url_contains("/auth/login"))
    wait.until(ec.element_to_be_clickable((By.NAME, "username"))).send_keys(cluster.username)
    browser.find_element(By.NAME, "password").send_keys(cluster.password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    try:
        wait.until(lambda b: "/auth/login" not in b.current_url)
    except TimeoutException:
        body = browser.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"the login form did not let {cluster.username!r} in; the page says:\n{body}")


def _texts(browser: WebDriver, css: str) -> list[str]:
    return [element.text.strip() for element in browser.find_elements(By.CSS_SELECTOR, css)]


def test_pipeline_run_shows_green_in_the_grid(
    chromium, warehouse_env, pg_admin_url, monkeypatch, tmp_path, webhook_emulations
):
    from contextlib import ExitStack

    from omnicanal.demo import start_webhooks

    started = time.monotonic()
    world = generate_world(PEOPLE, seed=23)
    expected = world.expected_recent_buyers()
    assert expected, "the world should have recent buyers for the sync to deliver"

    with ExitStack() as webhooks, SandboxServer(world, **webhook_emulations) as sandbox:
        # Task processes are the executor's children: they read the warehouse and the
        # platforms' URLs from the cluster's environment (the dbt tasks' connection is
        # derived from these settings by airflow_env), not from this test's process.
        env = {
            "OMNICANAL_WAREHOUSE_URL": warehouse_env,
            # every channel's default API URL is the sandbox's: this one's port
            "OMNICANAL_SANDBOX_PORT": str(sandbox.port),
            # WhatsApp's tap reads this test's receiver, which the emulation posted to
            "OMNICANAL_WEBHOOKS_PORT": os.environ["OMNICANAL_WEBHOOKS_PORT"],
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = get_settings()
        start_webhooks(settings, sandbox, webhooks)
        home = tmp_path / "airflow"
        try:
            with AirflowCluster(settings, home=home, env=env) as cluster:
                api = cluster.api
                assert _import_errors_once_all_parsed(api, settings.dags_dir) == []
                api.unpause(DAG_ID)
                run_id = api.trigger(DAG_ID)
                state = api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
                assert state == "success", _run_report(cluster, run_id)
                run_seconds = time.monotonic() - started

                held = sandbox.app.state.mailchimp.members(LIST, status="subscribed")
                assert {m["email_address"] for m in held} == set(expected)

                task_ids = {ti["task_id"] for ti in api.task_instances(DAG_ID, run_id)}
                with chromium() as browser:
                    shot = _check_grid(browser, cluster, run_id, task_ids, tmp_path)
        finally:
            drop_metadata_db(settings, home)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, SCREENSHOTS / shot.name)
    print(
        f"UI test: pipeline run green after {run_seconds:.0f}s, whole test "
        f"{time.monotonic() - started:.0f}s; screenshot {SCREENSHOTS / shot.name}"
    )


def _check_grid(
    browser: WebDriver, cluster: AirflowCluster, run_id: str, task_ids: set[str], tmp: Path
) -> Path:
    """Sign in, open the run in the DAG's grid, check what the page shows, screenshot.

    On a failure the page as it was (PNG and HTML) is kept beside the screenshot."""
    try:
        return _look_at_the_run(browser, cluster, run_id, task_ids, tmp)
    except BaseException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{DAG_ID}-failed.png"))
        (SCREENSHOTS / f"{DAG_ID}-failed.html").write_text(browser.page_source)
        raise


def _look_at_the_run(
    browser: WebDriver, cluster: AirflowCluster, run_id: str, task_ids: set[str], tmp: Path
) -> Path:
    # React re-renders elements: find them again on each poll instead of holding them.
    wait = WebDriverWait(
        browser,
        PAGE_TIMEOUT,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    _sign_in(browser, cluster, f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")

    # The run's header: its id and a state badge that reads Success.
    header = "[data-testid='header-card']"
    badge = f"{header} [data-testid='state-badge']"
    wait.until(lambda b: run_id in b.find_element(By.CSS_SELECTOR, header).text)
    wait.until(
        lambda b: b.find_element(By.CSS_SELECTOR, badge).text.strip() == "Success",
        message=f"the run's badge does not read Success: {_texts(browser, badge)}",
    )
    green = browser.find_element(By.CSS_SELECTOR, badge).value_of_css_property("background-color")
    wait.until(
        lambda b: DAG_ID in _texts(b, "nav[aria-label='breadcrumb'] a"),
        message="the breadcrumb does not name the DAG",
    )

    # The grid: one cell of this run for each top-level task and task group (the grid
    # renders only the rows in view), each with the Success badge's colour.
    cell = "a[data-testid='grid-{run}-{task}'] [data-testid='task-state-badge']"
    for task_id in sorted({task_id.split(".")[0] for task_id in task_ids}):
        selector = cell.format(run=run_id, task=task_id)
        wait.until(
            lambda b, selector=selector: (
                b.find_element(By.CSS_SELECTOR, selector).value_of_css_property("background-color")
                == green
            ),
            message=f"the grid cell of task {task_id} is not {green} (the Success colour)",
        )
    # Groups expanded, for the person who looks at the screenshot.
    browser.find_element(By.CSS_SELECTOR, "[data-testid='expand-all-button']").click()

    # The run's task instance list: every row it shows reads Success.
    states_css = "td[data-testid='table-cell-state']"
    wait.until(lambda b: _texts(b, states_css) and "No Status" not in _texts(b, states_css))
    rows = _texts(browser, "td[data-testid='table-cell-task_display_name']")
    states = _texts(browser, states_css)
    assert rows and set(rows) <= task_ids, rows
    assert set(states) == {"Success"}, list(zip(rows, states, strict=True))

    shot = tmp / f"{DAG_ID}-grid.png"
    assert browser.save_screenshot(str(shot)), "Chromium did not write the screenshot"
    assert shot.stat().st_size > 10_000
    return shot
