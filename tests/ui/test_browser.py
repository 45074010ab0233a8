"""A real browser (Debian chromium via Playwright) against a real API and ``opsloop ui`` on loopback:
sign in, open the most severe incident, see its chart and a cited passage, approve an action and see
its status change, with no console errors. Screenshots go under the test's tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def ui_url(live_api):
    """``opsloop ui`` as a subprocess on a free port, pointed at the live API."""
    port = free_port()
    env = {**os.environ, "OPSLOOP_API_URL": live_api.url}
    proc = subprocess.Popen([sys.executable, "-m", "opsloop.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"opsloop ui did not start: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def browser_page(playwright):
    """A chromium page (Debian's binary, never a downloaded one) and the console errors it logs."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def sign_in(page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("API token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Incidents").wait_for(timeout=30_000)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (apt-get install -y chromium)")
def test_review_and_approve_in_a_real_browser(live_api, ui_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    h = {"Authorization": f"Bearer {live_api.tokens['viewer']}"}
    top = httpx.get(f"{live_api.url}/incidents", headers=h).json()["data"][0]
    with sync_playwright() as p:
        browser, page, errors = browser_page(p)
        try:
            sign_in(page, ui_url, live_api.tokens["bob"])
            assert "opl_" not in page.url  # the token never goes into a URL
            page.get_by_role("button", name=top["title"], exact=True).first.click()
            page.get_by_role("heading", name=top["title"]).wait_for(timeout=30_000)
            chart = page.locator(".vega-embed canvas, .vega-embed svg").first
            chart.wait_for(timeout=30_000)
            page.get_by_role("heading", name="Runbook passages").scroll_into_view_if_needed()
            expect(page.get_by_text("›").first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)

            page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Approvals").click()
            page.get_by_role("heading", name="Approvals").wait_for(timeout=30_000)
            approve = page.get_by_role("button", name="Approve").first
            approve.wait_for(timeout=30_000)
            approve.click()
            expect(page.get_by_text("it is now approved").or_(page.get_by_text("it is now succeeded"))
                   .or_(page.get_by_text("Recorded your approval"))).to_be_visible(timeout=30_000)
            page.screenshot(path=str(tmp_path / "approvals.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "incident.png").stat().st_size > 10_000
    assert not errors, errors
