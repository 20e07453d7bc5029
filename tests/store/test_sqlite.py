"""The store: schema, bests that ignore crashes, grouped queries, lock, unwritable paths."""

from __future__ import annotations

import os

import pytest

from cellsearch.errors import StorageError
from cellsearch.store.sqlite import Store


def result(score, status="ok", lr=1.0, error=None):
    from dataclasses import asdict

    from cellsearch.hparams import HParams

    h = HParams(learning_rate=lr)
    metrics = {"score": score, **({"error": error} if error else {})}
    return {"hparams": asdict(h), "hp_key": h.key(), "status": status, "score": score, "metrics": metrics,
            "wall_s": 0.0, "compile_s": 0.0}


def test_best_counts_divergence_as_zero_and_ignores_crashes(tmp_path):
    with Store(str(tmp_path / "s.db")) as st:
        st.add_evaluations("a", "xml", [result(0.0, "error", 1.0, "boom")], 0)
        assert st.best("a", "xml") is None and st.first_error("a", "xml") == "boom"
        st.add_evaluations("a", "xml", [result(0.0, "diverged", 2.0)], 0)
        assert st.best("a", "xml") == 0.0
        st.add_evaluations("a", "xml", [result(0.7, "ok", 3.0)], 0)
        assert st.best("a", "xml") == 0.7
        assert st.statuses("a", "xml") == {"error": 1, "diverged": 1, "ok": 1}
        # the finished settings in the order stored, a diverged one at 0 and the crash left out
        assert [v for _, v in st.results_table()[("a", "xml")]] == [0.0, 0.7]
        assert st.evaluation_counts() == {"a": 3}
        # a setting is stored once: the same key again is ignored, never a second row
        st.add_evaluations("a", "xml", [result(0.9, "ok", 3.0)], 1)
        assert st.best("a", "xml") == 0.7 and len(st.evaluations("a", "xml")) == 3


def test_steps_pool_and_counts(tmp_path):
    with Store(str(tmp_path / "s.db")) as st:
        st.add_cell("h1", "{}", functional_hash="f", parent=None, edits=[], origin="seed:GRU", status="seed", step=0)
        st.add_cell("h2", "{}", functional_hash="g", parent="h1", edits=[], origin="mutation", status="candidate",
                    step=1)
        st.finish_step(0, "seed", "h1", "seeded", {}, ("seed", None), ["h1"])
        st.finish_step(1, "child", "h2", "error", {"stage": "xml", "error": "boom"}, ("error", None))
        st.finish_step(2, "child", None, "duplicate", {})
        assert st.pool() == ["h1"] and st.finished_steps() == {0, 1, 2}
        assert st.children_done() == 1  # duplicates do not count
        assert st.counts() == {"seed:seeded": 1, "child:error": 1, "child:duplicate": 1}
        assert st.cell("h2")["status"] == "error" and st.step_of("h2")["detail"]["error"] == "boom"
        with pytest.raises(StorageError, match="matches 2 cells"):
            st.cell("h")


def test_unwritable_and_missing_paths_are_one_line_errors(tmp_path):
    with pytest.raises(StorageError, match="no search store at"):
        Store(str(tmp_path / "none.db"), write=False)
    with pytest.raises(StorageError, match="cannot write the store"):
        Store(str(tmp_path / "no" / "such" / "dir.db"))
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(StorageError, match="cannot write the store"):
            Store(str(ro / "s.db"))
