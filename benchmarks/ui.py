"""Time to first render of the UI, through a real browser, on the demo store.

Builds the demo store (checkout scenario, seed 7, 7 days, one cycle) in a temporary OPSLOOP_HOME,
starts the API (``opsloop serve``) and the UI (``opsloop ui``), signs in with Debian chromium, then
measures, ``--runs`` times, in one signed-in session: from a click on "Incidents" in the sidebar
(coming from another page) until the first incident title is visible, and from a click on the most
severe incident until its page's title and first chart are visible.
Prints median and max seconds per page with the machine's load (``uptime``), against the goals
(list <= 2 s, incident page <= 1 s). ``--screenshots DIR`` writes ui-incident.png and
ui-approvals.png there.

    python benchmarks/ui.py --runs 5 --screenshots docs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import free_port

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _wait(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--screenshots", type=Path)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from opsloop.config import Settings
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.observe import observe
    from opsloop.store import repository as repo
    from opsloop.store.session import open_store

    home = Path(tempfile.mkdtemp(prefix="opsloop-ui-bench-"))
    settings = Settings(home=home, pack="checkout")
    paths = write_scenario(simulate(seed=7, days=7), home / "scenario")
    store = open_store(settings.resolved_database_url())
    run_cycle(observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]]), store, settings)
    with store.begin() as s:
        token = repo.create_token(s, "bench", "approver")
    env = {**os.environ, "OPSLOOP_HOME": str(home), "OPSLOOP_PACK": "checkout"}
    env.pop("OPSLOOP_DATABASE_URL", None)
    api_port, ui_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "opsloop.cli", "serve", "--port", str(api_port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api_url, ui_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    ui = subprocess.Popen([sys.executable, "-m", "opsloop.cli", "ui", "--port", str(ui_port), "--api", api_url],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"{api_url}/health", api, "the API")
        _wait(f"{ui_url}/_stcore/health", ui, "the UI")
        top = httpx.get(f"{api_url}/incidents", headers={"Authorization": f"Bearer {token}"}).json()["data"][0]
        lists, pages = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(ui_url)
            page.get_by_label("API token", exact=True).fill(token)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Incidents").wait_for(timeout=60_000)
            nav = page.get_by_test_id("stSidebarNavItems")
            for _ in range(args.runs):
                nav.get_by_role("link", name="Health").click()
                page.get_by_role("heading", name="Health").wait_for(timeout=60_000)
                t0 = time.perf_counter()
                nav.get_by_role("link", name="Incidents").click()
                page.get_by_role("button", name=top["title"], exact=True).first.wait_for(timeout=60_000)
                lists.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                page.get_by_role("button", name=top["title"], exact=True).first.click()
                page.get_by_role("heading", name=top["title"]).wait_for(timeout=60_000)
                page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=60_000)
                pages.append(time.perf_counter() - t0)
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshots / "ui-incident.png"), full_page=True)
                page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Approvals").click()
                page.get_by_role("heading", name="Approvals").wait_for(timeout=60_000)
                page.get_by_role("button", name="Approve").first.wait_for(timeout=60_000)
                page.screenshot(path=str(args.screenshots / "ui-approvals.png"), full_page=True)
            browser.close()
    finally:
        ui.terminate()
        api.terminate()
    load = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    print(f"load: {load}")
    for name, xs, goal in (("incident list", lists, 2.0), ("incident page", pages, 1.0)):
        med = statistics.median(xs)
        print(f"{name:>14}: median {med:.2f} s, max {max(xs):.2f} s over {len(xs)} runs; goal <= {goal:.0f} s: "
              f"{'met' if med <= goal else 'not met'}")


if __name__ == "__main__":
    main()
