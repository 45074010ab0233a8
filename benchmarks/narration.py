"""Does a configured LLM slow the cycle down? Time to stored incidents with the model off and on.

Simulates the demo's checkout week (``--seed``, ``--days``), runs one warm-up cycle (the embedding
model loads), then runs the same cycle alternately
with the LLM off and on (``--backend``, default the embedded llama.cpp with SmolLM2-135M), each into
a fresh SQLite store, ``--rounds`` times. With a model on, the cycle stores its incidents with the
rules' assessment marked *pending* and returns; the narratives are written afterwards by
:func:`opsloop.pipeline.narration.narrate_pending`, timed separately on the last store. Prints one
JSON line per run and a summary: median seconds to stored incidents off and on, their ratio, and
the narration's seconds and outcome counts. Give the machine's load (``uptime``) with the figures.

    python benchmarks/narration.py --rounds 2 --timeout 60

Figures (2026-12-03 07:30 UTC, load 1.1; before the warm-up cycle was added, so round 0 "off" paid
the model load): round 1 stored its incidents in 10.47 s off and 10.85 s on (1.04x); the six
SmolLM2-135M narratives then took 306 s after the commit, 0 of 6 validated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from opsloop.config import LLMConfig, Settings
from opsloop.packs.checkout.simulator import simulate, write_scenario
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.narration import narrate_pending
from opsloop.pipeline.observe import observe
from opsloop.store.session import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", default="llamacpp", choices=["llamacpp", "ollama"])
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = write_scenario(simulate(seed=args.seed, days=args.days), work / "scenario")
        signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
        run_cycle(signals, open_store(f"sqlite:///{work / 'warm.db'}"), Settings(home=work / "warm", pack="checkout"))
        times: dict[str, list[float]] = {"off": [], "on": []}  # after a warm-up cycle (MiniLM loaded)
        last = None
        for r in range(args.rounds):
            for mode in ("off", "on"):
                llm = LLMConfig(backend=args.backend if mode == "on" else "off", timeout=args.timeout)
                settings = Settings(home=work / f"{mode}{r}", pack="checkout", llm=llm)
                store = open_store(f"sqlite:///{work / f'{mode}{r}.db'}")
                t0 = time.perf_counter()
                result = run_cycle(signals, store, settings)
                seconds = time.perf_counter() - t0
                times[mode].append(seconds)
                pending = sum(i.assessment.narrative.value == "pending" for i in result.incidents)
                print(json.dumps({"round": r, "llm": mode, "stored_s": round(seconds, 2),
                                  "incidents": len(result.incidents), "pending": pending}), flush=True)
                if mode == "on":
                    last = (store, settings)
        store, settings = last
        done = narrate_pending(store, settings)
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(json.dumps({"summary": True, "stored_s_off": round(off, 2), "stored_s_on": round(on, 2),
                          "on_over_off": round(on / off, 3), "narration_s": done.seconds, **done.counts,
                          "reasons": sorted({d.split(" not used: ", 1)[-1][:60] for d in done.degradations}),
                          "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
