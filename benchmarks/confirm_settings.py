"""Confirmation at one setting against several: how a store's confirmed scores move when each cell
and the baseline are judged at the best of their best N stored settings instead of the best one.

Reads stores on which ``cellsearch confirm --settings N`` ran (N >= 2; the runs of the first
setting are those a plain ``confirm`` stores, so a store confirmed before needs only the
second settings' runs). For each confirmed cell it prints the confirmed score and verdict at the
first setting alone (each (cell, task)'s runs at its best search-time setting, what ``confirm``
gives with ``--settings 1``) and at all of them (``--settings N``), the setting each task was
judged at, and, with ``--start`` (a seed name, default the tanh RNN), each cell's ratio to the
start's confirmed score both ways, which is how ``rediscovery.py`` judges success.

    python benchmarks/confirm_settings.py runs/redisc/gates-Tanh-paper-1.db runs/redisc/gates-Tanh-paper-2.db

Reads only; trains nothing. (``benchmarks/README.md``, "Confirmation".)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from cellsearch.hparams import point_key
from cellsearch.search.confirm import confirmed, distinct_best
from cellsearch.search.results import baseline_of, stored_config
from cellsearch.search.verdicts import summary
from cellsearch.store.sqlite import Store

import common  # noqa: F401  (puts the repository on the path)


def first_setting_runs(runs: list[dict], store: Store) -> list[dict]:
    """The runs at each (cell, task)'s best search-time setting: what ``--settings 1`` trains."""
    first = {}
    out = []
    for r in runs:
        key = (r["cell_hash"], r["task"])
        if key not in first:
            (h,) = distinct_best(store, *key, 1)
            first[key] = point_key(asdict(h))
        if point_key(r["hparams"]) == first[key]:
            out.append(r)
    return out


def compare(db: str, start: str) -> list[dict]:
    with Store(db, write=False) as store:
        cfg = stored_config(store)
        base = baseline_of(store)[1]
        runs = store.confirmations()
        one = summary(first_setting_runs(runs, store), base, cfg.tasks)
        many = confirmed(store)
        origin = {r["hash"]: r["origin"] for r in store.conn.execute("SELECT hash, origin FROM cells")}
    s = next((c for c in many if origin.get(c) == f"seed:{start}"), None)
    rows = []
    for c in sorted(many, key=lambda c: -many[c]["score"]):
        row = {"db": db, "cell": c, "origin": origin.get(c), "one": round(one[c]["score"], 4),
               "one_verdict": one[c]["verdict"], "many": round(many[c]["score"], 4), "many_verdict": many[c]["verdict"],
               "judged_at": {t: p["setting"] for t, p in many[c]["tasks"].items()},
               "settings": {t: p["settings"] for t, p in many[c]["tasks"].items()}}
        if s and c != s:
            row["one_vs_start"] = round(one[c]["score"] / one[s]["score"], 4)
            row["many_vs_start"] = round(many[c]["score"] / many[s]["score"], 4)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dbs", nargs="+")
    ap.add_argument("--start", default="Tanh", help="the seed whose confirmed score the ratios divide by")
    args = ap.parse_args()
    for db in args.dbs:
        for row in compare(db, args.start):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
