"""The action catalog, the policy and the executors."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from opsloop.actions.catalog import load_catalog, spec_for
from opsloop.actions.executors import SimulatedExecutor, WebhookExecutor, sign
from opsloop.domain import Policy
from opsloop.domain import ProposedAction, Risk
from opsloop.packs import load_pack

CATEGORIES = load_pack("checkout").category_names
CATALOG_PATH = load_pack("checkout").catalog_path


def action(**kw) -> ProposedAction:
    base = dict(id="act-1", incident_id="inc-1", type="resync_webhook_secret", params={"merchants": ["m_001"]},
                rationale="r", risk=Risk.medium, confidence=0.9, requires_approval=True, idempotency_key="key-1")
    return ProposedAction(**{**base, **kw})


def test_catalog_loads_and_covers_every_category():
    catalog = load_catalog(CATALOG_PATH)
    for category in CATEGORIES:
        assert 2 <= len(catalog.for_category(category)) <= 4, category
    assert catalog.get("enable_payment_provider_failover").risk == Risk.critical
    with pytest.raises(KeyError):
        catalog.get("rm_rf")


def test_bad_catalog_names_the_file(tmp_path):
    bad = tmp_path / "catalog.yaml"
    bad.write_text("actions:\n  - type: x\n    risk: extreme\n")
    with pytest.raises(ValueError, match="catalog.yaml"):
        load_catalog(bad)
    text = CATALOG_PATH.read_text().replace("rollback: null", "rollback: no_such_action", 1)
    bad.write_text(text)
    with pytest.raises(ValueError, match="unknown rollback"):
        load_catalog(bad)


def test_policy():
    p = Policy(auto_execute_confidence=0.7)
    assert p.auto_executes(Risk.low, 0.7) and not p.auto_executes(Risk.low, 0.69)
    assert not p.auto_executes(Risk.medium, 1.0)
    assert [p.approvers_needed(r) for r in Risk] == [1, 1, 1, 2]
    only = Policy(auto_execute_types=frozenset({"open_ticket"}))
    assert only.auto_executes(Risk.low, 0.9, "open_ticket")
    assert not only.auto_executes(Risk.low, 0.9, "page_oncall") and not only.auto_executes(Risk.low, 0.9)
    assert not only.auto_executes(Risk.medium, 0.9, "open_ticket")
    assert p.auto_executes(Risk.low, 0.9, "anything")
    read_only = Policy(auto_execute_types=frozenset({"collect_diagnostics"}))
    assert read_only.auto_executes(Risk.low, 0.1, "collect_diagnostics", read_only=True)
    assert not read_only.auto_executes(Risk.low, 0.1, "collect_diagnostics")
    assert not read_only.auto_executes(Risk.medium, 1.0, "collect_diagnostics", read_only=True)


def test_action_specs_are_found_in_the_pack_then_the_built_in_catalogs():
    assert spec_for("collect_diagnostics", "generic").read_only
    assert spec_for("resync_webhook_secret", "generic").risk == Risk.medium  # stored by a checkout cycle
    with pytest.raises(KeyError, match="in no catalog"):
        spec_for("rm_rf", "generic")


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((dict(self.headers), body))
        code = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.answers, _Receiver.seen = [], []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver
    server.shutdown()


def test_webhook_executor_signs_retries_and_stops_on_4xx(receiver):
    url, recv = receiver
    recv.answers = [503, 502, 200]
    ok, result = WebhookExecutor(url=url, secret="s3cret", backoff=0.01).execute(action())
    assert ok and result["attempts"] == 3 and len(recv.seen) == 3
    headers, body = recv.seen[-1]
    assert headers["Idempotency-Key"] == "key-1"
    assert hmac.compare_digest(headers["X-Opsloop-Signature"], "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest())
    assert json.loads(body)["action"]["type"] == "resync_webhook_secret"
    recv.answers, recv.seen[:] = [400], []
    ok, result = WebhookExecutor(url=url, secret="s3cret", backoff=0.01).execute(action())
    assert not ok and len(recv.seen) == 1 and "HTTP 400" in result["errors"][0]


def test_webhook_executor_gives_up_after_bounded_retries():
    ok, result = WebhookExecutor(url="http://127.0.0.1:9/hook", secret="s", retries=2, backoff=0.01, timeout=0.5).execute(action())
    assert not ok and len(result["errors"]) == 3


def test_simulated_executor_records_what_it_would_do():
    ok, result = SimulatedExecutor().execute(action())
    assert ok and result["would_do"] == "resync_webhook_secret(merchants=['m_001'])" and result["idempotency_key"] == "key-1"
    assert sign(b"x", "k").startswith("sha256=")
