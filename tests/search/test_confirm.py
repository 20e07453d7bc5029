"""Confirmation: paired intervals and verdicts on runs with known means, and exact resume."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellsearch.cli.confirmations import print_summary, report_section
from cellsearch.search.confirm import confirm
from cellsearch.search.driver import run_search
from cellsearch.search.verdicts import interval, summary, verdict
from cellsearch.store.sqlite import Store
from tests.search_helpers import tiny_config


def _insert(st, cell, task, seed, score, status="ok", lr=None):
    hp = {} if lr is None else {"learning_rate": lr, "seed": 7_000_003 + seed}
    st.add_confirmation(cell, task, seed, 100, hp, {"score": score, "status": status, "metrics": {}, "wall_s": 0.0})


@pytest.mark.parametrize("effect,want", [(1.05, "better"), (1.0, "tie"), (0.95, "worse")])
def test_verdicts_on_synthetic_runs_with_known_means(tmp_path, effect, want):
    """Baseline scores vary a lot between seeds (seed noise), the cell's follow them times
    ``effect`` with 1 % noise: pairing by seed finds a 5 % difference with 5 seeds."""
    rng = np.random.default_rng(0)
    db = str(tmp_path / "c.db")
    with Store(db) as st:
        for s in range(5):
            base = rng.uniform(0.3, 0.6)
            for cell, score in (("base", base), ("cell", base * effect * rng.normal(1.0, 0.01))):
                _insert(st, cell, "arithmetic", s, score)
    with Store(db, write=False) as st:
        got = summary(st.confirmations(), "base", ("arithmetic",))["cell"]
    t = got["tasks"]["arithmetic"]
    assert t["pairs"] == 5 and t["lo"] < t["mean"] < t["hi"] and got["verdict"] == want
    assert abs(t["mean"] - effect) < 0.02


def test_a_cell_that_diverges_on_fresh_seeds_is_unstable_not_a_tie(tmp_path, capsys):
    """The measured case: a search's best diverged on 2 of 5 arithmetic seeds at its own best
    setting while the GRU trained; its ratios (near 1 or 0) have an interval that spans 1, but
    the verdict is ``unstable``, the failures are counted and printed, and they outrank a tie
    (yet not a worse task) over tasks."""
    db = str(tmp_path / "c.db")
    base = [0.4855, 0.4759, 0.4759, 0.4850, 0.4860]
    cell = [0.4730, 0.4696, 0.0, 0.0, 0.4836]
    with Store(db) as st:
        for s in range(5):
            _insert(st, "base", "arithmetic", s, base[s])
            _insert(st, "cell", "arithmetic", s, cell[s], "ok" if cell[s] else "diverged")
            _insert(st, "base", "xml", s, 0.55)
            _insert(st, "cell", "xml", s, 0.55 * (1.0 + 0.001 * s))
            _insert(st, "other", "arithmetic", s, base[s] * 0.9)  # worse on arithmetic, diverged once on XML
            _insert(st, "other", "xml", s, 0.0 if s == 0 else 0.55, "diverged" if s == 0 else "ok")
    with Store(db, write=False) as st:
        got = summary(st.confirmations(), "base", ("arithmetic", "xml"))
    a = got["cell"]["tasks"]["arithmetic"]
    assert a["lo"] < 1.0 < a["hi"], "the interval alone would call it a tie"
    assert a["failed"] == 2 and a["verdict"] == "unstable" and abs(a["mean"] - 0.5912) < 1e-3
    assert got["cell"]["tasks"]["xml"]["verdict"] == "better" and got["cell"]["verdict"] == "unstable"
    assert got["other"]["tasks"]["xml"]["verdict"] == "unstable" and got["other"]["verdict"] == "worse"
    print_summary(got)
    out = capsys.readouterr().out
    assert "arithmetic 0.5912 [" in out and "unstable (5 pairs, failed on 2 of 5 seeds)" in out
    page = report_section(got, ("arithmetic", "xml"), {"cell": 56, "other": 7}, "GRU")
    assert "<b>unstable</b>" in page and ", failed on 2 of 5 seeds</td>" in page


def test_a_cell_confirmed_at_two_settings_is_judged_at_its_better_one(tmp_path):
    """The measured case behind ``--settings``: a child's best search-time setting (lr 3)
    diverges on 2 of 5 fresh seeds, its second (lr 1) trains on all of them. At one setting it
    is ``unstable``; at two it is judged at lr 1, where it ties the baseline, and the baseline
    too is judged at the better of its two (lr 2 here, not its search-time best, lr 3)."""
    db = str(tmp_path / "c.db")
    base = [0.50, 0.52, 0.49, 0.51, 0.50]
    with Store(db) as st:
        for s in range(5):
            _insert(st, "base", "arithmetic", s, base[s] * 0.97, lr=3.0)
            _insert(st, "cell", "arithmetic", s, 0.0 if s in (1, 3) else base[s], "diverged" if s in (1, 3) else "ok",
                    lr=3.0)
    with Store(db, write=False) as st:
        one = summary(st.confirmations(), "base", ("arithmetic",))["cell"]["tasks"]["arithmetic"]
    assert one["verdict"] == "unstable" and one["settings"] == 1 and one["setting"] == {"learning_rate": 3.0}
    with Store(db) as st:  # the second settings of both, on the same seeds
        for s in range(5):
            _insert(st, "base", "arithmetic", s, base[s], lr=2.0)
            _insert(st, "cell", "arithmetic", s, base[s] * (1.0 + 0.002 * (s - 2)), lr=1.0)
    with Store(db, write=False) as st:
        two = summary(st.confirmations(), "base", ("arithmetic",))["cell"]["tasks"]["arithmetic"]
    assert two["settings"] == 2 and two["setting"] == {"learning_rate": 1.0} and two["failed"] == 0
    assert two["verdict"] == "tie" and abs(two["mean"] - 1.0) < 1e-9  # against the baseline's lr 2, not its lr 3


def test_a_version_1_store_is_upgraded_with_its_confirmations_kept(tmp_path):
    """A store written before confirmations were keyed by setting opens, keeps its runs, and
    takes a second setting of the same (cell, task, seed)."""
    import sqlite3

    from cellsearch.store.sqlite import SCHEMA

    db = str(tmp_path / "old.db")
    con = sqlite3.connect(db)
    con.executescript(SCHEMA.replace("UNIQUE(cell_hash, task, seed, steps, hparams)", "UNIQUE(cell_hash, task, seed, steps)"))
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO confirmations (cell_hash, task, seed, steps, hparams, score, status, metrics, wall_s, "
                "created_at) VALUES ('cell', 'arithmetic', 0, 100, '{\"learning_rate\": 3.0}', 0.5, 'ok', '{}', 1.0, 0)")
    con.commit()
    con.close()
    with Store(db, write=False) as st:  # a reader reads version 1 as it is
        assert st.meta("schema_version") == "1" and len(st.confirmations()) == 1
    with Store(db) as st:
        assert st.meta("schema_version") == "2"
        _insert(st, "cell", "arithmetic", 0, 0.4, lr=1.0)
        _insert(st, "cell", "arithmetic", 0, 0.9, lr=1.0)  # the same run again is ignored, as before
        got = [(r["hparams"], r["score"]) for r in st.confirmations()]
    assert got == [({"learning_rate": 3.0}, 0.5), ({"learning_rate": 1.0, "seed": 7_000_003}, 0.4)]


def test_interval_and_verdict_rules():
    m, lo, hi = interval([1.0])
    assert m == 1.0 and lo == -np.inf and verdict(lo, hi) == "tie"  # one pair proves nothing
    assert verdict(*interval([1.10, 1.11, 1.09])[1:]) == "better"
    assert verdict(*interval([0.90, 0.91, 0.89])[1:]) == "worse"


def test_confirm_on_a_missing_store_says_so_and_creates_nothing(tmp_path, capsys):
    from cellsearch.cli.main import main

    db = tmp_path / "nope.db"
    assert main(["confirm", "--db", str(db)]) == 2
    assert "no search store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def killed_at(n: int):
    """An ``on_event`` that raises ``KeyboardInterrupt`` (a kill) when run ``n`` is stored."""
    calls = {"n": 0}

    def on_event(kind, info):
        if kind == "run":
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt("simulated kill")

    return on_event


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> str:
    """A tiny search's store, shared (each test confirms in its own copy)."""
    db = str(tmp_path_factory.mktemp("searched") / "s.db")
    run_search(tiny_config(candidates=1), db)
    return db


def test_confirmation_is_stored_apart_and_resumes_exactly_after_a_kill(tmp_path, capsys, searched):
    full, cut = str(tmp_path / "full.db"), str(tmp_path / "cut.db")
    shutil.copy(searched, full)
    shutil.copy(full, cut)
    with Store(full, write=False) as st:
        evals_before = st.conn.execute("SELECT COUNT(*), SUM(score) FROM evaluations").fetchone()
    want = confirm(full, k=1, seeds=2, save=str(tmp_path / "runs"))
    assert len(want) == 1
    saved = sorted((tmp_path / "runs").glob("*/*/seed-*"))
    assert len(saved) == 8  # 2 cells x 2 tasks x 2 seeds, each reloadable
    from cellsearch.nn.export import GraphCell

    GraphCell.from_saved(str(saved[0]))
    with pytest.raises(KeyboardInterrupt):
        confirm(cut, k=1, seeds=2, on_event=killed_at(3))
    with Store(cut, write=False) as st:
        assert len(st.confirmations()) == 3
    assert confirm(cut, k=1, seeds=2) == want  # the same numbers, none repeated

    def key(db):
        with Store(db, write=False) as st:
            return sorted((r["cell_hash"], r["task"], r["seed"], r["score"], r["status"]) for r in st.confirmations())

    assert key(cut) == key(full) and len(key(full)) == 2 * 2 * 2  # 2 cells, 2 tasks, 2 seeds
    with Store(full, write=False) as st:  # the search's evaluations are untouched
        assert st.conn.execute("SELECT COUNT(*), SUM(score) FROM evaluations").fetchone() == evals_before
    from cellsearch.cli.main import main

    out = tmp_path / "conf.csv"
    capsys.readouterr()
    assert main(["export", "--db", full, "--table", "confirmations", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + 8 and "hp_learning_rate" in out.read_text()
    capsys.readouterr()
    assert main(["top", "--db", full]) == 0
    top = capsys.readouterr().out
    assert "confirmed verdict" in top.splitlines()[0]
    # a second setting per task later runs only the new runs, and the first setting's are kept
    from cellsearch.search.confirm import distinct_best
    from cellsearch.search.results import baseline_of

    with Store(full, write=False) as st:
        cells = [baseline_of(st)[1], *want]
        second = sum(len(distinct_best(st, c, t, 2)) - 1 for c in cells for t in ("arithmetic", "xml"))
    assert second > 0, "the tiny search should give its cells two distinct settings"
    capsys.readouterr()
    assert main(["confirm", "--db", full, "-k", "1", "--seeds", "2", "--settings", "2"]) == 0
    out, err = capsys.readouterr()
    runs = [line for line in err.splitlines() if line.startswith("run ")]
    assert len(runs) == 2 * second and all("(setting 2)" in line for line in runs)
    assert "the best of 2 settings" in out  # the tasks confirmed at two settings name the one judged
    assert set(key(cut)) < set(key(full))  # the first setting's runs are kept as they were
    both = confirm(full, k=1, seeds=2, settings=2)  # nothing left to run
    assert set(both) == set(want) and any(t["settings"] == 2 for c in both.values() for t in c["tasks"].values())
    from cellsearch.cli.report import build_report
    from tests.cli.test_report import chromium

    page = build_report(full, str(tmp_path / "r.html"))
    dom = chromium("--dump-dom", f"file://{page}").stdout
    heads = re.findall(r"<h2>(.*?)</h2>", dom)
    assert heads[heads.index("Leaderboard") + 1] == "Confirmation" and "img alt=\"confirmation\"" in dom
    cell = next(iter(want))
    assert main(["show", cell, "--db", full]) == 0
    assert f"# confirmed: {want[cell]['score']:.4f}, {want[cell]['verdict']} against GRU" in capsys.readouterr().out
    assert main(["confirm", "--db", full, "-k", "1", "--seeds", "2"]) == 0  # every run stored: nothing trains
    out = capsys.readouterr().out
    with Store(full, write=False) as st:
        from cellsearch.search.results import Scores

        searched = Scores(st).score(cell)
    assert f"{cell}: search-time {searched:.4f}, confirmed {want[cell]['score']:.4f}" in out
    gap = want[cell]["score"] - searched
    assert f"winner's curse: the 1 cells' scores moved by {gap:+.3f} on average" in out


def test_train_save_works_on_every_task(tmp_path):
    """`train --save` outside the standard protocol: the run reloads as a flax module with
    the trained parameters, its setting and result kept."""
    import jax
    import jax.numpy as jnp

    from cellsearch.cli.main import main
    from cellsearch.nn.checkpoint import load_run
    from cellsearch.nn.export import GraphCell

    d = str(tmp_path / "xml-run")
    assert main(["train", "GRU", "--task", "xml", "--steps", "10", "--lr", "0.5", "--task-opt", "seq_len=8",
                 "--save", d, "--no-compile-cache"]) == 0
    run = load_run(d)
    assert run.task == "xml" and run.settings["hparams"]["learning_rate"] == 0.5 and run.result["status"] == "ok"
    cell, variables = GraphCell.from_saved(d)
    carry = cell.initialize_carry(jax.random.key(0), (2, run.hidden))
    _, y = cell.apply(variables, carry, jnp.ones((2, run.hidden)))
    assert y.shape == (2, run.hidden) and bool(jnp.isfinite(y).all())
    leaf = jax.tree.leaves(variables["params"])[0]
    assert jnp.allclose(leaf, jax.tree.leaves(run.cell_params(0))[0])


def test_verification_retrains_the_best_confirmed_on_held_out_seeds_and_resumes(tmp_path, capsys, searched):
    """``confirm --verify``: the pick is the best confirmed of the top k; it and the baseline are
    re-trained at the settings their confirmation chose, on held-out seeds only; the confirmation
    table is unchanged by it; a kill mid-verification resumes with the same pick and numbers; a
    store verifies one pick only (a second would be chosen with the held-out seeds seen)."""
    from cellsearch.cli.main import main
    from cellsearch.errors import ConfigError
    from cellsearch.hparams import point_key
    from cellsearch.search.confirm import VERIFY_SEED0, confirmed, verified
    from cellsearch.search.results import baseline_of
    from cellsearch.search.verdicts import chosen_runs

    full, cut = str(tmp_path / "full.db"), str(tmp_path / "cut.db")
    shutil.copy(searched, full)
    conf = confirm(full, k=2, seeds=2)
    assert len(conf) == 2
    shutil.copy(full, cut)
    assert confirm(full, k=2, seeds=2, verify=2) == conf  # the confirmation's summary is not touched
    with Store(full, write=False) as st:
        base = baseline_of(st)[1]
        check = verified(st)
        runs = st.confirmations()
        chosen = chosen_runs([r for r in runs if r["seed"] < VERIFY_SEED0])[1]
    pick = max(conf, key=lambda c: conf[c]["score"])
    assert check["cell"] == pick and sorted(check["among"]) == sorted(conf) and check["result"] is not None
    held = [r for r in runs if r["seed"] >= VERIFY_SEED0]
    assert sorted({r["seed"] for r in held}) == [VERIFY_SEED0, VERIFY_SEED0 + 1]
    assert {r["cell_hash"] for r in held} == {pick, base} and len(held) == 2 * 2 * 2
    for r in held:  # each at the setting its confirmation chose, not a new choice on the held-out seeds
        assert point_key(r["hparams"]) == point_key(chosen[(r["cell_hash"], r["task"])]["hparams"])
    assert check["result"]["tasks"]["arithmetic"]["pairs"] == 2

    with pytest.raises(KeyboardInterrupt):
        confirm(cut, k=2, seeds=2, verify=2, on_event=killed_at(3))
    with Store(cut, write=False) as st:
        assert verified(st)["cell"] == pick and verified(st)["result"] is None  # picked, 2 runs in
    confirm(cut, k=2, seeds=2, verify=2)
    with Store(cut, write=False) as st:
        assert verified(st) == check
    with Store(cut) as st:  # a store that picked another cell refuses a second pick, storing nothing
        st.set_meta("verification", json.dumps({**check, "cell": next(c for c in conf if c != pick)}))
        n = len(st.confirmations())
    with pytest.raises(ConfigError, match="second pick"):
        confirm(cut, k=2, seeds=2, verify=2)
    with Store(cut, write=False) as st:
        assert len(st.confirmations()) == n and confirmed(st) == conf
    capsys.readouterr()
    assert main(["top", "--db", full]) == 0
    out = capsys.readouterr().out
    assert f"# verified: {pick}, the best confirmed of 2 cells on 2 seeds, re-trained on 2 held-out seeds" in out
    assert f"{check['result']['score']:.4f}, {check['result']['verdict']}" in out
    assert main(["show", pick, "--db", full]) == 0
    assert "# verified: " + pick in capsys.readouterr().out
    from cellsearch.cli.report import build_report

    assert "<b>verified: " + pick in Path(build_report(full, str(tmp_path / "r.html"))).read_text()
    with pytest.raises(SystemExit):
        main(["confirm", "--db", full, "--verify", "-1"])
    assert "--verify" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="verify 0"):
        confirm(full, k=2, seeds=2, verify=1)
