"""Ticket clustering (HDBSCAN / DBSCAN on MiniLM embeddings): themes, terms, labels, real tickets; log templates."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from opsloop.clustering.embedders import TfidfEmbedder, get_embedder
from opsloop.clustering.logs import signatures
from opsloop.clustering.masking import mask_messages
from opsloop.clustering.tickets import class_tfidf_terms, cluster, cluster_label, cluster_tickets
from tests.conftest import shared_dataset

WEBHOOK = [
    "We stopped receiving order webhooks since this afternoon",
    "No order notifications reach our endpoint anymore, webhooks failing",
    "Our webhook endpoint gets nothing since 2pm, orders missing in our system",
    "Order webhooks are not arriving, fulfilment shows no new orders",
    "Webhook deliveries for new orders stopped, please check",
    "Since today we don't get order webhook calls",
]
CART = [
    "My cart is empty when I go to pay",
    "Items disappear from the basket when I click checkout",
    "Customers say the cart empties at the payment step",
    "Basket shows zero items at checkout although I added products",
    "Cart gets emptied at checkout, nobody can buy",
]
NOISE = ["How do I download last month's invoice?", "Please change my payout schedule to weekly",
         "Can you reset my dashboard password?"]


def frame() -> pd.DataFrame:
    texts = WEBHOOK + CART + NOISE
    t0 = pd.Timestamp("2026-11-03 14:00", tz="UTC")
    return pd.DataFrame({
        "id": [f"T-{i}" for i in range(len(texts))],
        "created_at": [t0 + pd.Timedelta(minutes=5 * i) for i in range(len(texts))],
        "subject": [t.split(",")[0][:40] for t in texts], "body": texts,
        "merchant_id": [f"m_{i % 3}" for i in range(len(texts))],
        "stage": ["headless"] * len(WEBHOOK) + ["dual_run"] * len(CART) + [None] * len(NOISE),
    })


def test_minilm_clusters_themes_and_leaves_noise_out():
    embedder, note = get_embedder("minilm")
    assert note is None
    clusters = cluster_tickets(frame(), embedder, eps=0.5, min_samples=3, labels=("stage", "merchant_id"))
    members = [set(c.ticket_ids) for c in clusters]
    webhook_ids = {f"T-{i}" for i in range(len(WEBHOOK))}
    cart_ids = {f"T-{i}" for i in range(len(WEBHOOK), len(WEBHOOK) + len(CART))}
    assert any(len(m & webhook_ids) >= 5 and not m & cart_ids for m in members)
    assert any(len(m & cart_ids) >= 4 and not m & webhook_ids for m in members)
    noise_ids = {f"T-{i}" for i in range(len(WEBHOOK) + len(CART), len(WEBHOOK) + len(CART) + len(NOISE))}
    assert not any(m & noise_ids for m in members)
    web = next(c for c in clusters if set(c.ticket_ids) & webhook_ids)
    assert web.affected["stage"] == ["headless"] and set(web.affected["merchant_id"]) <= {"m_0", "m_1", "m_2"}
    assert any(term.startswith("webhook") for term in web.top_terms)
    assert 1 <= len(web.examples) <= 3 and web.first_seen <= web.last_seen


def test_tfidf_embedder_is_normalised():
    v = TfidfEmbedder().embed(WEBHOOK + CART)
    assert v.shape[0] == len(WEBHOOK + CART)
    assert abs(float((v[0] ** 2).sum()) - 1.0) < 1e-5


def test_log_masking_and_signatures():
    msgs = pd.Series(["webhook delivery failed: 403 Forbidden merchant=m_019 delivery_id=dlv_8f3a21bc",
                      "webhook delivery failed: 403 Forbidden merchant=m_007 delivery_id=dlv_00aa11ff"])
    t = mask_messages(msgs)
    assert t.iloc[0] == t.iloc[1] == "webhook delivery failed: 403 Forbidden merchant=<ID> delivery_id=<ID>"
    ts = pd.to_datetime(["2026-11-03 13:00", "2026-11-03 14:10", "2026-11-03 14:20"], utc=True)
    logs = pd.DataFrame({"ts": ts, "service": "webhook-dispatcher", "endpoint": "POST /webhooks/orders",
                         "status": [200, 403, 403], "level": ["INFO", "ERROR", "ERROR"],
                         "message": ["ok", msgs.iloc[0], msgs.iloc[1]]})
    sigs = signatures(logs, pd.Timestamp("2026-11-03 14:00", tz="UTC"), pd.Timestamp("2026-11-03 15:00", tz="UTC"),
                      min_count=2)
    assert len(sigs) == 1 and sigs[0].count == 2 and sigs[0].baseline_rate == 0.0 and sigs[0].rate == 2.0


def test_top_terms_come_only_from_the_clusters_own_tickets():
    texts = ["printer toner empty", "printer toner low", "printer jam", "it is on", "is it on", "on it"]
    labels = np.array([0, 0, 0, 1, 1, 1])
    terms = class_tfidf_terms(texts, labels, top_n=5)
    assert terms[0][0] == "printer" and set(terms[0]) <= {"printer", "toner", "empty", "low", "jam"}
    # cluster 1 has only stop words and short tokens: its terms are its own tokens, never "printer"
    assert terms[1] and set(terms[1]) <= {"it", "is", "on"}
    assert class_tfidf_terms(["a", "b"], np.array([0, 0])) == {0: []}  # nothing countable at all
    assert class_tfidf_terms(texts, np.full(6, -1)) == {}


def test_labels_are_never_empty():
    assert cluster_label(["VPN drops", "", "VPN drops", "Mailbox full"], ["vpn"], ["x"], 4) == "VPN drops"
    assert cluster_label(["", " ", ""], ["printer", "toner", "jam", "tray"], ["x"], 3) == "printer / toner / jam"
    assert cluster_label([""], [], ["laptop will not boot after the update this morning again"], 1) == (
        "laptop will not boot after the update this")
    assert cluster_label([""], [], [" "], 7) == "7 similar tickets"


def test_clusters_without_subjects_get_term_labels_and_boilerplate_free_terms():
    body = ["hello team printer toner empty again kind regards", "hi printer toner low thanks",
            "dear support printer jam toner thank you", "printer toner streaks regards"] * 2
    body += ["hello vpn disconnects every hour thanks", "hi vpn drops at home regards",
             "vpn client disconnects thank you", "dear team vpn disconnects again"] * 2
    t0 = pd.Timestamp("2026-11-03", tz="UTC")
    tickets = pd.DataFrame({"id": [f"T-{i}" for i in range(len(body))], "subject": "", "body": body,
                            "created_at": [t0 + pd.Timedelta(minutes=i) for i in range(len(body))]})
    res = cluster(tickets, TfidfEmbedder(), min_cluster_size=4)
    assert len(res.clusters) == 2
    for c in res.clusters:
        assert c.label and c.label == " / ".join(c.top_terms[:3])
        assert not set(c.top_terms) & {"hello", "regards", "thanks", "thank", "dear", "team", "kind"}
    assert {c.top_terms[0] for c in res.clusters} == {"printer", "vpn"}


@pytest.fixture(scope="session")
def it_tickets_sample():
    """1,500 real helpdesk tickets (seeded sample of ../shared/datasets/it_tickets) and their labels."""
    path = shared_dataset("it_tickets", "it_service_tickets.csv")
    data = pd.read_csv(path)
    rows = data.iloc[np.sort(np.random.default_rng(0).choice(len(data), 1500, replace=False))]
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    tickets = pd.DataFrame({"id": [f"IT-{i}" for i in rows.index], "subject": "",
                            "body": rows["Document"].fillna("").astype(str).to_numpy(),
                            "created_at": t0 + pd.to_timedelta(np.arange(len(rows)), unit="min")})
    return tickets, rows["Topic_group"].astype(str).to_numpy()


@pytest.mark.slow
def test_real_helpdesk_tickets_give_separate_readable_themes(it_tickets_sample):
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import normalized_mutual_info_score

    tickets, y = it_tickets_sample
    embedder, note = get_embedder("minilm")
    assert note is None
    res = cluster(tickets, embedder)
    sizes = np.array([c.size for c in res.clusters])
    assert len(res.clusters) >= 8 and sizes.max() <= 0.25 * len(tickets)  # no chaining into one theme
    assert (res.labels < 0).mean() <= 0.30  # measured 0.17 (0.36 before the hybrid vectors)
    nmi = normalized_mutual_info_score(y, res.labels)  # noise counted as one label of its own
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(tickets["body"])
    baseline = normalized_mutual_info_score(y, KMeans(n_clusters=8, n_init=10, random_state=0).fit_predict(tfidf))
    assert nmi >= 0.30 and nmi > baseline + 0.1  # measured 0.341 (0.294 before the hybrid vectors) against 0.15
    texts = dict(zip(tickets["id"], tickets["body"]))
    for c in res.clusters:
        assert c.label and c.top_terms
        own = " ".join(texts[i].lower() for i in c.ticket_ids)
        assert all(re.search(rf"\b{re.escape(t)}\b", own) for t in c.top_terms)  # from its own tickets
