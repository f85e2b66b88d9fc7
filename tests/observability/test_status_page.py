"""The status page (`/ui/`) in real headless Chromium (Debian's package,
driven by Playwright): it shows every member of a running cluster with its
zone, draws one ring wedge per partition coloured by its primary, keeps
refreshing, and loads with no console error and no failed request. A
screenshot goes to artifacts_dir()/status-page.png."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, expect, sync_playwright

from conftest import Cluster, artifacts_dir, http, make_cluster

CHROMIUM = "/usr/bin/chromium"
# What the machine notes ask of Chromium here (as root, on a closed
# network): no sandbox, no GPU, and none of its own background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 800}
ADMIN_TOKEN = "admin-3f9d"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh profile."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: tests/observability/run.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Problems:
    """What went wrong while a page was open: console errors, uncaught
    exceptions, requests that failed or were answered 4xx/5xx."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("requestfailed", self.failed)
        page.on("response", self.response)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def failed(self, request: Request) -> None:
        self.errors.append(f"failed: {request.method} {request.url}: {request.failure}")

    def response(self, response: Response) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.request.method} {response.url}")


def ring_status(cluster: Cluster) -> dict:  # type: ignore[type-arg]
    status, body = http("GET", f"{cluster.nodes[0].url}/v1/status?ring=true")
    assert status == 200, body
    return json.loads(body)


def test_status_page_shows_the_cluster(cluster: Cluster, browser: Browser) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    problems = Problems()
    problems.watch(page)
    started = time.monotonic()
    page.goto(f"{cluster.nodes[0].url}/")
    assert page.url == f"{cluster.nodes[0].url}/ui/"

    # Every member, by id, in its zone, alive.
    rows = page.locator("#members tr.member")
    expect(rows).to_have_count(len(cluster.nodes))
    for node in cluster.nodes:
        row = page.locator(f'#members tr.member[data-member="{node.id}"]')
        expect(row).to_have_attribute("data-zone", node.zone)
        expect(row.locator("td.state-alive")).to_have_text("alive", timeout=20_000)
        heading = page.locator(f'#members tr.zone[data-zone="{node.zone}"]')
        expect(heading).to_contain_text(f"zone {node.zone}")
    loaded = time.monotonic() - started

    # One wedge per partition, coloured by its primary as the legend says.
    ring = ring_status(cluster)["ring"]
    owners = ring["owners"]
    wedges = page.eval_on_selector_all(
        "#ring path.partition",
        "ps => ps.map(p => [Number(p.dataset.partition), p.dataset.owner, p.getAttribute('fill')])",
    )
    assert len(wedges) == ring["partitions"] == len(owners)
    legend = dict(
        page.eval_on_selector_all(
            "#members rect[data-member]", "rs => rs.map(r => [r.dataset.member, r.getAttribute('fill')])"
        )
    )
    assert sorted(legend) == sorted(n.id for n in cluster.nodes)
    assert len(set(legend.values())) == len(legend), legend
    for partition, owner, fill in wedges:
        assert owner == owners[partition][0], (partition, owner)
        assert fill == legend[owner], (partition, owner, fill)
    assert sorted(p for p, _, _ in wedges) == list(range(len(owners)))
    bands = page.eval_on_selector_all("#ring path.zone-band", "bs => bs.map(b => b.dataset.zone)")
    assert set(bands) == {n.zone for n in cluster.nodes}

    # It refreshes by itself, still without a failure.
    updated = page.locator("#updated").inner_text()
    expect(page.locator("#updated")).not_to_have_text(updated, timeout=10_000)

    screenshot = artifacts_dir() / "status-page.png"
    page.screenshot(path=str(screenshot))
    print(f"status page: members shown {loaded:.1f} s after loading; screenshot {screenshot}")
    assert problems.errors == []


@pytest.fixture
def guarded_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The three nodes with `--auth-dir`: every /v1 route wants a token."""
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "admin-token").write_text(f"{ADMIN_TOKEN}\n")
    (auth / "peer-token").write_text("peer-52a1\n")
    started = make_cluster(tmp_path, extra_args=[f"--auth-dir={auth}"])
    try:
        started.start()
        yield started
    finally:
        started.stop()


def test_status_page_asks_for_a_token_where_the_status_needs_one(
    guarded_cluster: Cluster, browser: Browser
) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    problems = Problems()
    problems.watch(page)
    page.goto(f"{guarded_cluster.nodes[1].url}/ui/")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#members tr.member")).to_have_count(0)

    page.fill("#token", ADMIN_TOKEN)
    page.click("#token-form button")
    expect(page.locator("#token-form")).to_be_hidden()
    expect(page.locator("#members tr.member")).to_have_count(len(guarded_cluster.nodes))
    expect(page.locator("#node-id")).to_have_text(guarded_cluster.nodes[1].id)
    assert page.evaluate("sessionStorage.getItem('dynamo-status-token')") == ADMIN_TOKEN
    # The one refused request was the status asked for without a token
    # (Chromium also logs it to the console).
    status_url = f"{guarded_cluster.nodes[1].url}/v1/status?ring=true"
    assert f"HTTP 401: GET {status_url}" in problems.errors
    assert [e for e in problems.errors if "401" not in e] == []
