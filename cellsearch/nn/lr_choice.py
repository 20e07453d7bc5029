"""Each cell at its own learning rate under the standard protocol (``train --lr-grid``).

Jozefowicz et al. tuned every architecture's settings; comparing cells at one learning rate
that suits the LSTM (``zaremba-small``'s 1.0) compares them at a setting that suits one of
them. :func:`choose_lr` runs a **short probe** per rate, the first epoch at a fixed rate
(``probe_windows`` training windows of it if given, else the whole epoch; a choice, not the
paper's procedure, which is not published), and picks the rate with the lowest validation NLL;
a rate that diverges is out. The full protocol then runs at the chosen rate. The probes and the
choice are returned (and ``train --save`` writes them to ``DIR/lr_choice.json``).

"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

from cellsearch.config import ProtocolConfig
from cellsearch.errors import ConfigError, Diverged
from cellsearch.nn.protocol import run_protocol


def choose_lr(graph, data, cfg: ProtocolConfig, grid: tuple[float, ...], *, probe_windows: int | None = None,
              on_probe=None) -> tuple[float, list[dict]]:
    """The rate of ``grid`` whose probe reaches the lowest validation NLL, and every probe
    (``{"lr", "valid_nll", "status"}``)."""
    if not grid or min(grid) <= 0:
        raise ConfigError(f"--lr-grid needs positive rates, got {grid}")
    probes = []
    for lr in grid:
        probe = replace(cfg, lr=lr, epochs=1, schedule="fixed", max_windows=probe_windows or cfg.max_windows)
        try:
            r = run_protocol(graph, data, probe)
            nll = float(r["valid"]["nll"])
            row = {"lr": lr, "valid_nll": nll, "status": "ok" if math.isfinite(nll) else "diverged"}
        except Diverged as e:
            row = {"lr": lr, "valid_nll": math.inf, "status": "diverged", "error": str(e)}
        probes.append(row)
        if on_probe:
            on_probe(row)
    ok = [p for p in probes if p["status"] == "ok"]
    if not ok:
        raise ConfigError(f"every rate of --lr-grid {','.join(map(str, grid))} diverged in the probe; try lower rates")
    return min(ok, key=lambda p: (p["valid_nll"], p["lr"]))["lr"], probes


def save_choice(d: str, lr: float, probes: list[dict], probe_windows: int | None) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "lr_choice.json"), "w") as f:
        json.dump({"chosen": lr, "probe": {"epochs": 1, "windows": probe_windows}, "probes": probes}, f, indent=1,
                  default=str)
