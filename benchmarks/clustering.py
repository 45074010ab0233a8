"""Ticket clustering: quality on the simulator and on real helpdesk tickets, and speed at 1k / 10k / 100k.

**Simulator quality** (per seed, ``--days`` days, MiniLM, the default clustering of
:func:`~opsloop.clustering.tickets.cluster`: HDBSCAN on the k-NN graph with the giant-cluster guard
and the noise vote; ``min_samples`` 4): a
ticket's true label is the injected incident whose ``ticket_ids`` hold it; chatter tickets are
labelled by the chatter *topic* whose subject template they match (the simulator does not store the
topic, so it is recovered from :mod:`opsloop.packs.checkout.ticket_templates`; every chatter ticket matched).
Adjusted Rand index and NMI are computed on the tickets DBSCAN clustered (noise excluded; the noise
share is reported next to them) for

* ``topic``: incidents + chatter topics -- a topic has 2-4 templates that say different things
  ("copy of invoice" vs "VAT number missing"), which a semantic clustering rightly splits;
* ``template``: incidents + chatter subject templates;
* ``incidents``: incident tickets only;

each for the pure semantic clusters and after :func:`~opsloop.clustering.tickets.split_bursts`
(1 h gaps, bursts of >= 5): incidents of different kinds can read alike (the same complaint for an
auth failure and for a slowdown) and land in one theme; they happen at different times. The former
default (DBSCAN, eps at the k-distance knee) and the old fixed ``eps=0.35`` are scored on the same
vectors. Ticket surges (:mod:`opsloop.clustering.surges`) over the whole scenario: an incident has
one when a surge starts between 1 h before it and 3 h after its end; other surges are false.

**Real tickets** (``../shared/datasets/it_tickets``, 47,837 IT helpdesk tickets with 8 ``Topic_group``
labels; skipped with a message if absent): a seeded random sample of ``--it-n`` tickets (MiniLM on
all 47,837 takes far too long on 2 shared cores), ``Document`` as the body, no subject. Scored:
our default (the same ``cluster`` call the pipeline makes, hybrid vectors included), TF-IDF + k-means (k = 8, the true
number of labels; scikit-learn ``TfidfVectorizer(sublinear_tf=True, min_df=2)``), MiniLM + HDBSCAN
(scikit-learn defaults, ``min_cluster_size=5``, on our MiniLM vectors) and the former default
(DBSCAN at the knee). NMI (arithmetic) and ARI are given over all sampled tickets with noise as one
label of its own (``*_all``) and over the clustered tickets only (``*_clustered``), with the noise
share and the largest cluster's share of all tickets; then ten of our clusters (label, top terms,
size, majority label and its share), spread over the size ranking.

**Speed.** Embedding throughput: MiniLM on ``--embed-n`` synthesised tickets (simulator templates
re-filled with random merchants, orders, times), seconds for 1k/10k/100k extrapolated from it (the
model is loaded before timing). Clustering seconds after embedding, each size in a fresh process
(peak RSS of that process reported): 1k on real MiniLM vectors; 10k and 100k on vectors resampled
from those real ones with a small random jitter (each copy ~0.03 cosine distance from its source),
i.e. random normalised vectors with the cluster structure of real tickets -- embedding 100k tickets
here would take over an hour. At 10k the default (bounded) graph is compared with the exact one.

    python benchmarks/clustering.py --seeds 7 1 2 3 4 5 6 --embed-n 1000

**Figures** (2026-12-02, ``--seeds 7 1 --it-n 6000``; our default = HDBSCAN on MiniLM + 0.5 x LSA(20)
hybrid vectors, before it MiniLM alone). it_tickets sample seed 0: NMI_all 0.361 (before 0.346), ARI_all
0.097 (0.104), NMI_clustered 0.441 (0.424), noise 0.268 (0.29), largest 0.057 (0.074), 64 clusters;
sample seed 1 (not used to choose the weight): NMI_all 0.364 (0.339), ARI_all 0.132 (0.098), noise
0.244 (0.323), largest 0.094 (0.039). TF-IDF + k-means (k = 8): 0.182 (seed 0). Simulator topic ARI:
seed 7 0.896 (0.91), seed 1 0.853 (0.854); 6/6 incidents with a surge, 0 false, both seeds.
Clustering 10k (resampled vectors, synthesised texts): hybrid 1.35x the embeddings-only seconds
(LSA ~4-7 s of it, 2 shared cores, load ~8).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import re
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from opsloop.clustering.dbscan import FaissDBSCAN, normalise
from opsloop.clustering.embedders import MiniLMEmbedder, _load_minilm
from opsloop.clustering.hdbscan import FaissHDBSCAN
from opsloop.clustering.surges import ticket_surges
from opsloop.clustering.themes import CachedEmbedder, InMemoryEmbeddingCache
from opsloop.clustering.tickets import cluster, split_bursts, ticket_texts
from opsloop.packs import load_pack
from opsloop.packs.checkout import ticket_templates as tt
from opsloop.packs.checkout.simulator import DEFAULT_START, simulate


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- labels
def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{[a-z]+\}", template)
    return re.compile("^" + ".+?".join(map(re.escape, parts)) + "$", re.DOTALL)


_CHATTER = [(_template_regex(subject), topic, f"{topic}#{i}")
            for topic, pairs in tt.BACKGROUND.items() for i, (subject, _) in enumerate(pairs)]


def truth(tickets: pd.DataFrame, ground_truth: list[dict]) -> pd.DataFrame:
    """``topic``, ``template`` and ``incident`` (bool) per ticket (NaN topic: unmatched chatter)."""
    topic = pd.Series(np.nan, index=tickets["id"], dtype=object)
    template = topic.copy()
    for g in ground_truth:
        topic[g["ticket_ids"]] = g["name"]
        template[g["ticket_ids"]] = g["name"]
    incident = topic.notna().to_numpy().copy()
    for i, subject in zip(tickets["id"], tickets["subject"]):
        if pd.isna(topic[i]):
            for rx, name, tpl in _CHATTER:
                if rx.match(subject):
                    topic[i], template[i] = f"chatter:{name}", f"chatter:{tpl}"
                    break
    return pd.DataFrame({"topic": topic.to_numpy(), "template": template.to_numpy(), "incident": incident},
                        index=tickets.index)


def _scores(labels: np.ndarray, y: pd.Series, mask: np.ndarray) -> dict:
    keep = mask & (labels >= 0) & y.notna().to_numpy()
    if keep.sum() < 2:
        return {"ari": None, "nmi": None, "n": int(keep.sum())}
    return {"ari": round(float(adjusted_rand_score(y[keep], labels[keep])), 3),
            "nmi": round(float(normalized_mutual_info_score(y[keep], labels[keep])), 3), "n": int(keep.sum())}


def quality(seed: int, days: int, embedder) -> dict:
    scen = simulate(seed=seed, days=days)
    tickets = scen.tickets
    lab = truth(tickets, scen.ground_truth)
    t0 = time.perf_counter()
    vecs = embedder.embed(ticket_texts(tickets))
    embed_s = time.perf_counter() - t0
    res = cluster(tickets, embedder, vectors=vecs)
    bursts = split_bursts(tickets["created_at"], res.labels, "1h", 5)
    old = cluster(tickets, embedder, vectors=vecs, eps=0.35, min_samples=4).labels
    knee_model = FaissDBSCAN(min_samples=4).fit(vecs)
    everything, inc = np.ones(len(tickets), bool), lab["incident"].to_numpy()
    pack = load_pack("checkout")
    surges = ticket_surges(tickets, res.clusters, None, pack.labels, pack.tickets.hard_terms, severity=pack.severity)

    def surge_hits(g):  # customers write from minutes after the start until ~2 h after the end
        lo, hi = pd.Timestamp(g["start"]) - pd.Timedelta("1h"), pd.Timestamp(g["end"]) + pd.Timedelta("3h")
        return [a for a in surges if lo <= pd.Timestamp(a.start) <= hi]

    def block(labels):
        return {"topic": _scores(labels, lab["topic"], everything),
                "template": _scores(labels, lab["template"], everything),
                "incidents": _scores(labels, lab["topic"], inc)}

    return {
        "seed": seed, "days": days, "tickets": len(tickets), "incident_tickets": int(inc.sum()),
        "unlabelled_chatter": int(lab["topic"].isna().sum()), "median_core_distance": round(res.eps, 4),
        "clusters": len(res.clusters), "graph": res.stats.get("graph"),
        "noise_share": round(float((res.labels < 0).mean()), 3),
        "largest_share": round(max((c.size for c in res.clusters), default=0) / max(len(tickets), 1), 3),
        "incident_noise_share": round(float((res.labels[inc] < 0).mean()), 3),
        "semantic": block(res.labels), "burst_split": block(bursts), "old_eps_0.35": block(old),
        "former_default_dbscan_knee": block(knee_model.labels_) | {
            "eps": round(knee_model.eps_, 4), "noise_share": round(float((knee_model.labels_ < 0).mean()), 3)},
        "embed_s": round(embed_s, 2), "cluster_s": res.stats["cluster_s"],
        "surges": {"incidents_with_surge": sum(bool(surge_hits(g)) for g in scen.ground_truth),
                   "incidents": len(scen.ground_truth),
                   "false_surges": sum(not any(a in surge_hits(g) for g in scen.ground_truth) for a in surges),
                   "kinds": {g["name"]: sorted({a.kind.value for a in surge_hits(g)}) for g in scen.ground_truth}},
    }


# ---------------------------------------------------------------------------------------------- real tickets
IT_TICKETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "it_tickets" / "it_service_tickets.csv"


def it_sample(n: int, seed: int = 0, path: Path = IT_TICKETS) -> tuple[pd.DataFrame, np.ndarray]:
    """A seeded random sample of ``n`` it_tickets rows as a tickets frame (``Document`` as body, no
    subject, one ticket a minute) and their ``Topic_group`` labels."""
    data = pd.read_csv(path)
    rows = data.iloc[np.sort(np.random.default_rng(seed).choice(len(data), min(n, len(data)), replace=False))]
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    tickets = pd.DataFrame({"id": [f"IT-{i}" for i in rows.index], "subject": "",
                            "body": rows["Document"].fillna("").astype(str).to_numpy(),
                            "created_at": t0 + pd.to_timedelta(np.arange(len(rows)), unit="min")})
    return tickets, rows["Topic_group"].astype(str).to_numpy()


def partition_scores(y: np.ndarray, labels: np.ndarray) -> dict:
    """NMI/ARI over all tickets (noise = one label of its own) and over the clustered ones, noise share,
    largest cluster share, number of clusters."""
    labels = np.asarray(labels)
    keep = labels >= 0
    sizes = np.bincount(labels[keep]) if keep.any() else np.zeros(1, int)
    out = {"nmi_all": normalized_mutual_info_score(y, labels), "ari_all": adjusted_rand_score(y, labels)}
    if keep.sum() >= 2:
        out |= {"nmi_clustered": normalized_mutual_info_score(y[keep], labels[keep]),
                "ari_clustered": adjusted_rand_score(y[keep], labels[keep])}
    out = {k: round(float(v), 3) for k, v in out.items()}
    return out | {"noise_share": round(float(1 - keep.mean()), 3), "largest_share": round(float(sizes.max() / len(labels)), 3),
                  "clusters": int(keep.any() and labels.max() + 1)}


def it_tickets(n: int, seed: int, embedder) -> dict:
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not IT_TICKETS.exists():
        log(f"it_tickets: dataset not found at {IT_TICKETS}; skipped")
        return {"skipped": f"dataset not found at {IT_TICKETS}"}
    tickets, y = it_sample(n, seed)
    log(f"it_tickets: embedding {len(tickets)} sampled tickets (seed {seed}) with MiniLM ...")
    t0 = time.perf_counter()
    vecs = embedder.embed(ticket_texts(tickets))
    embed_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = cluster(tickets, embedder, vectors=vecs)
    ours_s = time.perf_counter() - t1
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(tickets["body"])
    kmeans = KMeans(n_clusters=8, n_init=10, random_state=0).fit_predict(tfidf)
    hdb = HDBSCAN(min_cluster_size=5, copy=True).fit_predict(vecs)
    knee = FaissDBSCAN(min_samples=4).fit(vecs)
    samples = []
    ranks = np.unique(np.linspace(0, len(res.clusters) - 1, min(10, len(res.clusters))).round().astype(int))
    for r in ranks:
        c = res.clusters[r]
        truth_counts = pd.Series(y[res.labels == r]).value_counts()
        samples.append({"rank": int(r) + 1, "size": c.size, "label": c.label, "top_terms": c.top_terms,
                        "majority": truth_counts.index[0], "majority_share": round(float(truth_counts.iloc[0] / c.size), 2)})
    return {
        "sample": {"n": len(tickets), "of": int(pd.read_csv(IT_TICKETS, usecols=["Topic_group"]).shape[0]), "seed": seed,
                   "labels": len(set(y))},
        "convention": "*_all: every sampled ticket, noise (-1) counted as one label of its own; *_clustered: noise excluded",
        "ours_default": partition_scores(y, res.labels) | {"seconds": round(ours_s, 2), "graph": res.stats.get("graph")},
        "tfidf_kmeans_k8": partition_scores(y, kmeans),
        "minilm_hdbscan_sklearn_defaults": partition_scores(y, hdb),
        "former_default_dbscan_knee": partition_scores(y, knee.labels_) | {"eps": round(knee.eps_, 4)},
        "embed_s": round(embed_s, 1),
        "sample_clusters": samples,
    }


# ---------------------------------------------------------------------------------------------- speed
def synth_tickets(n: int, seed: int = 0, incident_share: float = 0.3, n_merchants: int = 24, days: int = 30) -> pd.DataFrame:
    """``n`` tickets from the simulator's templates with random merchants, orders, amounts and times."""
    rng = np.random.default_rng(seed)
    topics, incidents = sorted(tt.BACKGROUND), sorted(tt.INCIDENTS)
    rows = []
    for i in range(n):
        when = DEFAULT_START + timedelta(milliseconds=int(rng.integers(0, days * 86_400_000)))
        m = int(rng.integers(n_merchants))
        names = rng.choice(tt.FIRST_NAMES, 2, replace=False)
        ctx = {"store": f"{tt.STORE_PREFIXES[m % len(tt.STORE_PREFIXES)]} {tt.STORE_SUFFIXES[(7 * m) % len(tt.STORE_SUFFIXES)]}",
               "merchant": f"m_{m + 1:03d}", "order": "ord_" + rng.bytes(6).hex(),
               "amount": f"{rng.lognormal(np.log(62), 0.5):.2f}", "when": when.strftime("%H:%M UTC"),
               "n": int(rng.integers(3, 25)), "plugin": str(rng.choice(tt.PLUGINS)),
               "invoice": f"INV-{when.year}-{int(rng.integers(1000, 99999)):05d}",
               "date": (when - timedelta(days=int(rng.integers(1, 20)))).strftime("%b %d").replace(" 0", " "),
               "name": str(names[0]), "colleague": str(names[1]), "country": str(rng.choice(tt.COUNTRIES))}
        if rng.random() < incident_share:
            name = incidents[int(rng.integers(len(incidents)))]
            texts = tt.INCIDENTS[name]
            subject = str(rng.choice(texts["subjects"]))
            body = (str(rng.choice(tt.GREETINGS)) + str(rng.choice(texts["bodies"])) + str(rng.choice(tt.URGENCY))
                    + str(rng.choice(tt.SIGNOFFS)))
            label = name
        else:
            topic = topics[int(rng.integers(len(topics)))]
            subject, body = tt.BACKGROUND[topic][int(rng.integers(len(tt.BACKGROUND[topic])))]
            body = str(rng.choice(tt.GREETINGS)) + body + str(rng.choice(tt.SIGNOFFS))
            label = f"chatter:{topic}"
        rows.append({"id": f"S-{i:07d}", "created_at": pd.Timestamp(when), "subject": subject.format(**ctx),
                     "body": body.format(**ctx), "merchant_id": ctx["merchant"],
                     "stage": ("legacy", "dual_run", "headless")[m % 3], "label": label})
    return pd.DataFrame(rows)


def resample(source: np.ndarray, n: int, jitter: float = 0.25, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: random rows of ``source`` plus Gaussian noise of norm ~``jitter``."""
    rng = np.random.default_rng(seed)
    x = source[rng.integers(len(source), size=n)]
    x = x + jitter * rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(x.shape[1])
    return normalise(x)


def _cluster_child(path: str, kwargs: dict, out) -> None:
    x = np.load(path)
    method = kwargs.pop("method", "default")
    t0 = time.perf_counter()
    model = FaissHDBSCAN(**kwargs).fit(x) if method == "default" else FaissDBSCAN(min_samples=4, **kwargs).fit(x)
    seconds = time.perf_counter() - t0
    np.save(path + ".labels.npy", model.labels_)
    row = {"seconds": round(seconds, 2), "clusters": int(model.labels_.max() + 1),
           "noise_share": round(float((model.labels_ < 0).mean()), 3),
           "graph": vars(model.stats_ if method == "default" else model.graph_stats_),
           "peak_rss_gib": round(_peak_rss_kib() / 2**20, 2)}
    if method != "default":
        row["eps"] = round(model.eps_, 4)
    out.put(row)


def _peak_rss_kib() -> int:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would include the forked parent's
    peak, which Linux carries across ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timed_clustering(x: np.ndarray, workdir: Path, **kwargs) -> tuple[dict, np.ndarray]:
    """Cluster ``x`` in a fresh process: its seconds, peak RSS and labels."""
    path = str(workdir / f"x{len(x)}_{'_'.join(map(str, kwargs.values()))}.npy")
    np.save(path, x)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_cluster_child, args=(path, kwargs, q))
    p.start()
    while True:
        try:
            res = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"clustering child for n={len(x)} died (exit code {p.exitcode})") from None
    p.join()
    return res, np.load(path + ".labels.npy")


def speed(embed_n: int, sizes: list[int]) -> dict:
    tickets = synth_tickets(max(embed_n, 1000), seed=1)
    texts = ticket_texts(tickets)
    _load_minilm()  # model load excluded from throughput
    emb = MiniLMEmbedder(batch_size=64)
    t0 = time.perf_counter()
    vecs = emb.embed(texts[:embed_n])
    per_s = embed_n / (time.perf_counter() - t0)
    cached = CachedEmbedder(emb, InMemoryEmbeddingCache())
    cached.cache.put_many({cached.key(t): v for t, v in zip(texts[:embed_n], vecs)})
    t1 = time.perf_counter()
    cached.embed(texts[:embed_n])
    cached_per_s = embed_n / max(time.perf_counter() - t1, 1e-9)
    out = {"embedding": {
        "model": "all-MiniLM-L6-v2 (cpu)", "measured_on": embed_n, "tickets_per_s": round(per_s, 1),
        "cache_hit_tickets_per_s": round(cached_per_s, 0),
        "extrapolated_s": {str(n): round(n / per_s, 1) for n in (1_000, 10_000, 100_000) if n > embed_n},
        "note": f"measured once on {embed_n} tickets on this shared 2-core machine; larger sizes extrapolated",
    }, "clustering": {}}
    log(f"embedding: {per_s:.1f} tickets/s")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in sizes:
            x = vecs[:n] if n <= len(vecs) else resample(vecs, n, seed=n)
            row, labels = timed_clustering(x, work)
            row["vectors"] = "MiniLM" if n <= len(vecs) else f"resampled from {len(vecs)} MiniLM vectors + jitter"
            if n == 10_000:  # the former default (DBSCAN at the knee, bounded graph) and its exact graph
                dbscan, labels = timed_clustering(x, work, method="dbscan")
                row["former_default_dbscan_knee"] = dbscan
                exact, exact_labels = timed_clustering(x, work, method="dbscan", exact=True, eps=dbscan["eps"])
                dbscan["exact_graph"] = {"seconds": exact["seconds"], "peak_rss_gib": exact["peak_rss_gib"],
                                      "edges": exact["graph"]["edges"],
                                      "ari_bounded_vs_exact": round(float(adjusted_rand_score(exact_labels, labels)), 4),
                                      "same_noise": bool(np.array_equal(exact_labels < 0, labels < 0))}
            out["clustering"][str(n)] = row
            log(f"clustering {n}: {row['seconds']} s, {row['peak_rss_gib']} GiB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3, 4, 5, 6])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--embed-n", type=int, default=1000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--it-n", type=int, default=6000, help="it_tickets sample size (0: skip)")
    ap.add_argument("--it-seed", type=int, default=0, help="it_tickets sample seed")
    args = ap.parse_args()
    embedder = CachedEmbedder(MiniLMEmbedder(), InMemoryEmbeddingCache())
    rows = []
    for seed in args.seeds:
        rows.append(quality(seed, args.days, embedder))
        log(json.dumps({k: rows[-1][k] for k in ("seed", "clusters", "noise_share")}
                       | {"semantic": rows[-1]["semantic"]["topic"], "surges": rows[-1]["surges"]}))

    def mean(path):
        vals = []
        for r in rows:
            v = r
            for p in path:
                v = v[p]
            if v is not None:
                vals.append(v)
        return round(float(np.mean(vals)), 3) if vals else None

    summary = {f"{mode}.{lab}.{m}": mean([mode, lab, m])
               for mode in ("semantic", "burst_split", "old_eps_0.35", "former_default_dbscan_knee")
               for lab in ("topic", "template", "incidents") for m in ("ari", "nmi")}
    summary["noise_share"] = mean(["noise_share"])
    summary["largest_share"] = mean(["largest_share"])
    summary["surges"] = {"incidents_with_surge": sum(r["surges"]["incidents_with_surge"] for r in rows),
                         "incidents": sum(r["surges"]["incidents"] for r in rows),
                         "false_surges": sum(r["surges"]["false_surges"] for r in rows)}
    report = {"quality": rows, "quality_mean_over_seeds": summary}
    if args.it_n > 0:
        report["it_tickets"] = it_tickets(args.it_n, args.it_seed, embedder)
    if not args.skip_speed:
        report["speed"] = speed(args.embed_n, args.sizes)
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
