"""The dashboard in a real headless Chromium against a real `shoal server` with real agents: signing in,
the pools' heat map, a running job's progress changing without a reload, a task's output followed as it is
written, node details, schedules and the metrics' charts; a screenshot of each page is checked (not blank)
and kept (`tests/web/browser.py`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client import Client
from shoal.client.types import TaskSpec
from tests.e2e.harness import ServerProcess, free_port
from tests.web.browser import browser_problem, chrome, save_screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WAIT = 60.0


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[ServerProcess]:
    problem = browser_problem()
    if problem:
        pytest.skip(f"no headless browser here: {problem}")
    port = free_port()
    srv = ServerProcess(tmp_path / "data", extra_args=("--http-listen", f"127.0.0.1:{port}"))
    srv.http_url = f"https://127.0.0.1:{port}"  # type: ignore[attr-defined]
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def driver():  # type: ignore[no-untyped-def]
    d = chrome()
    d.set_page_load_timeout(WAIT)
    try:
        yield d
    finally:
        d.quit()


def until(driver, what: str, probe, timeout: float = WAIT):  # type: ignore[no-untyped-def]
    """Poll `probe(driver)` until it gives something truthy (failing with `what` and the page's text)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            got = probe(driver)
        except (StaleElementReferenceException, WebDriverException):
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            body = driver.find_element("tag name", "body").text[:2000]
            raise AssertionError(f"timed out waiting for {what}; the page reads:\n{body}")
        time.sleep(0.1)


def sign_in(driver, server: ServerProcess, target: str = "/") -> None:  # type: ignore[no-untyped-def]
    key = json.loads((server.data_dir / "credentials.json").read_text())["key"]
    driver.get(f"{server.http_url}{target}")  # type: ignore[attr-defined]
    until(driver, "the sign-in form", lambda d: d.find_elements("id", "key"))
    driver.find_element("id", "account").clear()
    driver.find_element("id", "account").send_keys("default")
    driver.find_element("id", "key").send_keys(key)
    driver.find_element("id", "sign-in").click()


def test_the_dashboard_follows_a_running_job(web_server: ServerProcess, driver) -> None:  # type: ignore[no-untyped-def]
    client = Client.connect(web_server.address, timeout=30)
    try:
        client.pools.create(id="render", target_nodes=3, task_slots_per_node=1)
        client.pools.wait_nodes_idle("render", count=3, timeout=WAIT)
        client.jobs.create(id="frames", pool_id="render")
        script = "for i in 1 2 3 4 5 6 7 8; do echo frame-line-$i; sleep 1; done"
        client.tasks.add("frames", TaskSpec(id="talker", command_line=f"/bin/sh -c '{script}'"))
        client.tasks.add_many("frames", [TaskSpec(id=f"f{i:02}", command_line="/bin/sleep 1.5") for i in range(12)])

        # Signing in lands on the pools, whose heat map shows each node by its state, live.
        sign_in(driver, web_server)
        until(
            driver, "three nodes in the heat map", lambda d: len(d.find_elements("css selector", ".heatmap .node")) == 3
        )
        states = {e.get_attribute("data-state") for e in driver.find_elements("css selector", ".heatmap .node")}
        assert states <= {"IDLE", "RUNNING"}, states
        until(driver, "the live marker", lambda d: d.find_elements("css selector", ".pool-card .live:not(.off)"))
        assert driver.find_element("id", "who").text == "default"
        save_screenshot(driver, "pools")

        # The job's page: its progress moves while the page stays (no reload: a marker set now survives).
        driver.get(f"{web_server.http_url}/#/jobs/frames")  # type: ignore[attr-defined]
        bar = until(driver, "the job's progress", lambda d: d.find_elements("id", "job-progress"))
        until(
            driver, "all 13 tasks", lambda d: d.find_element("id", "job-progress").get_attribute("data-total") == "13"
        )
        driver.execute_script("window.__stayed = true")
        first = int(bar[0].get_attribute("data-completed"))
        assert first < 13
        until(
            driver,
            "the progress to change",
            lambda d: int(d.find_element("id", "job-progress").get_attribute("data-completed")) > first,
        )
        assert driver.execute_script("return window.__stayed === true")
        assert driver.find_elements("css selector", "#tasks tr[data-task='f00']")
        save_screenshot(driver, "job")
        # The filter narrows the list.
        driver.find_element("id", "task-filter").send_keys("talker")
        until(driver, "one row", lambda d: len(d.find_elements("css selector", "#tasks tbody tr")) == 1)

        # A task's output, followed while it is written.
        driver.get(f"{web_server.http_url}/#/jobs/frames/tasks/talker")  # type: ignore[attr-defined]
        until(driver, "the first lines", lambda d: "frame-line-1" in d.find_element("id", "stdout").text)
        until(driver, "the last line", lambda d: "frame-line-8" in d.find_element("id", "stdout").text)
        text = driver.find_element("id", "stdout").text
        assert text.count("frame-line-1\n") == 1 or text.count("frame-line-1") == 1, text  # not repeated
        until(driver, "the task completed", lambda d: "completed" in d.find_element("id", "view").text)
        save_screenshot(driver, "task")

        # A node's page lists its files and shows one.
        node = next(iter(client.pools.nodes("render"))).id
        driver.get(f"{web_server.http_url}/#/pools/render/nodes/{node}")  # type: ignore[attr-defined]
        until(driver, "the node's files", lambda d: d.find_elements("css selector", "#node-files a:not([data-dir])"))
        driver.find_elements("css selector", "#node-files a:not([data-dir])")[0].click()
        until(driver, "a file's text", lambda d: d.find_element("id", "node-file").is_displayed())
        assert "/metrics" in driver.find_element("id", "view").text  # where its agent serves its metrics
        save_screenshot(driver, "node")
        driver.find_elements("css selector", "#node-files a[data-dir]")[0].click()
        until(driver, "a directory opened", lambda d: d.find_elements("link text", ".."))

        # The pool's own page, schedules and the metrics' charts load.
        driver.get(f"{web_server.http_url}/#/pools/render")  # type: ignore[attr-defined]
        until(driver, "the nodes table", lambda d: len(d.find_elements("css selector", "#nodes tbody tr")) == 3)
        save_screenshot(driver, "pool")
        driver.get(f"{web_server.http_url}/#/schedules")  # type: ignore[attr-defined]
        until(driver, "the schedules page", lambda d: "Job schedules" in d.find_element("id", "view").text)
        driver.get(f"{web_server.http_url}/#/metrics")  # type: ignore[attr-defined]
        until(driver, "the metrics page", lambda d: "the last hour" in d.find_element("id", "view").text)
        # Sampled from the server's registry since it started: gauges have points at once.
        for title in ("Tasks running", "Nodes idle", "Server memory (MiB)"):
            chart = until(driver, title, lambda d, t=title: d.find_elements("css selector", f"[data-chart='{t}']"))
            assert int(chart[0].get_attribute("data-points")) >= 1
        save_screenshot(driver, "metrics")
    finally:
        client.close()


def test_a_wrong_key_shows_nothing(web_server: ServerProcess, driver) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{web_server.http_url}/#/jobs")  # type: ignore[attr-defined]
    until(driver, "the sign-in form", lambda d: d.find_elements("id", "key"))
    driver.find_element("id", "key").send_keys("not-the-key")
    driver.find_element("id", "sign-in").click()
    until(driver, "the refusal", lambda d: "do not match" in d.find_element("tag name", "body").text)
    driver.get(f"{web_server.http_url}/api/jobs")  # type: ignore[attr-defined]
    assert "sign in first" in driver.find_element("tag name", "body").text


def test_every_pool_on_the_pools_page_is_live(web_server: ServerProcess, driver) -> None:  # type: ignore[no-untyped-def]
    # (A browser opens at most six connections to one server: a stream per pool left the others, and
    # every other request of the page and of its other tabs, waiting.)
    client = Client.connect(web_server.address, timeout=30)
    try:
        for i in range(9):
            client.pools.create(id=f"pool{i}", target_nodes=0, task_slots_per_node=1)
        sign_in(driver, web_server)
        until(driver, "nine pools", lambda d: len(d.find_elements("css selector", ".pool-card")) == 9)
        until(
            driver, "every pool live", lambda d: len(d.find_elements("css selector", ".pool-card .live:not(.off)")) == 9
        )
        # The page's other requests still go through.
        driver.get(f"{web_server.http_url}/#/jobs")  # type: ignore[attr-defined]
        until(driver, "the jobs page", lambda d: "No jobs yet" in d.find_element("id", "view").text)
    finally:
        client.close()


def test_a_malformed_page_address_says_so(web_server: ServerProcess, driver) -> None:  # type: ignore[no-untyped-def]
    sign_in(driver, web_server)
    until(driver, "the pools page", lambda d: "Pools" in d.find_element("id", "view").text)
    driver.get(f"{web_server.http_url}/#/jobs/%E0%A4%A")  # type: ignore[attr-defined]
    until(driver, "the page to say so", lambda d: "No such page" in d.find_element("id", "view").text)
