"""Shared helpers for the benchmark scripts: device description, JSON lines, timing, rank agreement."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def device() -> str:
    import jax

    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{d.platform}:{kind} ({os.cpu_count()} cpus, {platform.machine()})"


def emit(record: dict) -> None:
    """One JSON line per measurement, with the device."""
    print(json.dumps({"device": device(), **record}), flush=True)


def timeit(fn, *, warmup: int = 2, repeat: int = 10) -> float:
    """Seconds per call of ``fn`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def best_of(fns: dict, *, rounds: int = 5, repeat: int = 5, warmup: int = 2) -> dict:
    """Seconds per call of each function: the best of ``rounds`` rounds of ``repeat`` calls,
    the contenders interleaved round by round, so that a noisy machine hurts them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(repeat):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / repeat)
    return best


def table(rows: list[dict], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    out = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        out.append("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in cols))
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def preset_config(preset: str, seed: int):
    """The search settings of ``preset`` (``quick`` or ``default``) for search seed ``seed``."""
    from cellsearch.search.config import SearchConfig, quick_config

    if preset not in ("quick", "default"):
        raise SystemExit(f"--preset: quick or default, got {preset!r}")
    return quick_config(seed=seed) if preset == "quick" else SearchConfig(seed=seed)


def first_settings(cfg, task: str, rng, n: int, *, spread: bool | None = None) -> list:
    """``n`` different grid points of ``task``'s grid (seed 0), drawn one at a time as
    ``Search._settings`` draws a cell's first settings on a task (``spread``: learning rates not
    drawn yet first; default: as ``cfg.spread_rates`` says)."""
    spread = cfg.spread_rates if spread is None else spread
    return cfg.hparam_space(task).draw(rng, n, spread_rates=spread)


def quick_seed_best(cell: str, name: str, task, seed: int, steps: int = 0, *, preset: str = "quick",
                    settings: int = 0) -> float:
    """The best score of seed cell ``cell`` on task ``name`` (a built ``task``) trained as a
    search of ``preset`` (``--quick`` by default) with seed ``seed`` trains it: its
    ``init_settings`` settings drawn as the search draws them (``settings``: only the first N
    of them), its training config (``steps`` overrides the steps)."""
    from dataclasses import replace

    import numpy as np

    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import seeded
    from cellsearch.nn.train import train_and_evaluate

    cfg = preset_config(preset, seed)
    rng = np.random.default_rng([seed, 0])
    settings_ = [seeded(h, seed) for h in first_settings(cfg, name, rng, cfg.init_settings)]
    if settings:
        settings_ = settings_[:settings]
    train = cfg.train_config(name)
    if steps:
        train = replace(train, steps=steps)
    return max(r.score for r in train_and_evaluate(find_seed(cell), task, settings_, train))


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties share their mean rank); NaN if either side is constant."""
    import numpy as np

    def ranks(v):
        _, inv, counts = np.unique(np.asarray(v, float), return_inverse=True, return_counts=True)
        return (np.cumsum(counts) - (counts + 1) / 2.0)[inv]  # each group's mean rank, from 0

    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1]) if rx.std() and ry.std() else float("nan")


def spearman_interval(x, y, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95 % interval of :func:`spearman` (pairs resampled with replacement)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x, y = np.asarray(x), np.asarray(y)
    vals = [spearman(x[i], y[i]) for i in (rng.integers(0, len(x), len(x)) for _ in range(n))]
    lo, hi = np.nanpercentile(vals, [2.5, 97.5])
    return float(lo), float(hi)
