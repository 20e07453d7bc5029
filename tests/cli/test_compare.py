"""Several searches side by side (`cellsearch report A.db B.db`), rendered in a browser."""

from __future__ import annotations

import json
import os
import re

from cellsearch.cli.main import main
from cellsearch.search.driver import run_search
from cellsearch.store.sqlite import Store
from tests.search_helpers import Scripted, cfg, staged


def test_searches_side_by_side_render_in_a_browser(tmp_path, capsys):
    from cellsearch.cli.compare import at, band, curves, groups
    from cellsearch.cli.report import StoreData
    from tests.cli.test_report import chromium

    a, a1, b = str(tmp_path / "a.db"), str(tmp_path / "a1.db"), str(tmp_path / "b.db")
    run_search(cfg(candidates=8), a, executor=Scripted(staged))
    run_search(cfg(candidates=8, seed=1), a1, executor=Scripted(staged))
    run_search(cfg(candidates=8, seed=3, strategy="random"), b, executor=Scripted(staged))
    out = tmp_path / "cmp.html"
    assert main(["report", a, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert re.findall(r"<h2>(.*?)</h2>", dom) == ["Best score so far", "Funnels", "Settings that differ", "Best cells"]
    assert "a.db (paper, seed 0)" in dom and "b.db (random, seed 3)" in dom
    assert "<th>strategy</th>" in dom and len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom)) == 1
    # two seeds of one strategy: a group with its mean and range across seeds
    assert main(["report", a, a1, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert re.findall(r"<h2>(.*?)</h2>", dom)[:3] == ["Best score so far", "Across seeds", "Funnels"]
    assert re.search(r"<td>paper</td><td>0, 1</td>", dom) and re.search(r"<td>random</td><td>3</td>", dom)
    stores = [Store(p, write=False) for p in (a, a1, b)]
    try:
        data = [StoreData(st) for st in stores]
        assert groups(data) == {"paper": [0, 1], "random": [2]}
        cs = [curves(d) for d in data[:2]]
        xs, mean, lo, hi = band(cs, "children")
        assert xs[-1] == max(c["children"][-1] for c in cs)
        assert all(lo_ <= m <= hi_ for m, lo_, hi_ in zip(mean, lo, hi, strict=True))
        assert mean[-1] == sum(at(c, "children", xs[-1]) for c in cs) / 2
    finally:
        for st in stores:
            st.close()
    # a store with confirmation runs shows its best confirmed score and verdict
    from cellsearch.search.results import baseline_of, leaderboard, stored_config

    with Store(a) as st:
        c = stored_config(st)
        base = baseline_of(st)[1]
        cell = next(r["hash"] for r in leaderboard(st, c, 5) if r["hash"] != base)
        for t in c.tasks:
            for seed, bs in enumerate((0.40, 0.50, 0.45)):
                for h, score in ((base, bs), (cell, bs * 1.05)):
                    st.add_confirmation(h, t, seed, 100, {}, {"score": score, "status": "ok", "metrics": {}, "wall_s": 0})
            for seed, bs in enumerate((0.40, 0.50), start=1000):  # held-out seeds: a tie there
                for h, score in ((base, bs), (cell, bs * (1.01 if seed % 2 else 0.99))):
                    st.add_confirmation(h, t, seed, 100, {}, {"score": score, "status": "ok", "metrics": {}, "wall_s": 0})
        st.set_meta("verification", json.dumps({"cell": cell, "among": [cell], "selected_on": 3, "seeds": 2,
                                                "steps": 100}))
    assert main(["report", a, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert "<th>best confirmed (verdict)</th>" in dom and "<td>1.0500 (better); verified 1.0000 (tie)</td>" in dom
    assert main(["report", a, a, "-o", str(out)]) == 2
    assert "named twice" in capsys.readouterr().err
    assert main(["report", a, b, "--watch", "-o", str(out)]) == 2
    os.remove(out)
