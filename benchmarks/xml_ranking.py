"""Does XML rank cells at ``--quick``'s budget? Spread between seed cells against seed noise.

For each tag-name length range (``--names 2-10,1-3``), trains each cell (``--cells``) on
``--quick``'s XML settings (its training config, budget, and ``init_settings`` settings drawn as
the search draws them) under ``--seeds`` search seeds, and reports each cell's mean best score
and standard deviation over seeds. XML ranks cells when the spread of the means (max - min)
is well above the noise (the mean standard deviation).

    python xml_ranking.py --seeds 3
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from common import device, quick_seed_best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cells", default="Tanh,LSTM,LSTM-f,GRU,MUT1")
    ap.add_argument("--names", default="2-10,1-3")
    args = ap.parse_args()
    from cellsearch.search.config import quick_config
    from cellsearch.tasks import get_task

    print(f"# device: {device()}")
    rows = []
    for names in args.names.split(","):
        lo, hi = (int(v) for v in names.split("-"))
        opts = {**quick_config().task_options["xml"], "min_name": lo, "max_name": hi}
        task = get_task("xml", opts)
        means = {}
        for cell in args.cells.split(","):
            scores = [quick_seed_best(cell, "xml", task, s) for s in range(args.seeds)]
            means[cell] = (float(np.mean(scores)), float(np.std(scores)))
            row = {"names": names, "cell": cell, "mean": round(means[cell][0], 4), "std": round(means[cell][1], 4),
                   "scores": [round(v, 4) for v in scores]}
            print(json.dumps(row), flush=True)
            rows.append(row)
        spread = max(m for m, _ in means.values()) - min(m for m, _ in means.values())
        noise = float(np.mean([sd for _, sd in means.values()]))
        print(json.dumps({"names": names, "spread": round(spread, 4), "noise": round(noise, 4),
                          "ranks": spread > 2 * noise}), flush=True)


if __name__ == "__main__":
    main()
