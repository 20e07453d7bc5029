"""The report: built from a real store (scripted training), opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cellsearch.cli.main import main
from cellsearch.cli.report import build_report
from cellsearch.errors import StorageError
from cellsearch.search.driver import run_search
from cellsearch.store.sqlite import Store
from tests.search_helpers import Scripted, cfg, staged

TITLES = ["Progress", "Funnel and time", "Tasks: ratio to the baseline", "Leaderboard", "Hyperparameters",
          "Cheap vs full"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("report") / "s.db"
    run_search(cfg(candidates=14), str(db), executor=Scripted(staged))
    return db


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_report_renders_in_a_browser(store, tmp_path):
    out = build_report(str(store), str(tmp_path / "report.html"))
    page = Path(out).read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page  # offline, no server
    dom = chromium("--dump-dom", f"file://{out}").stdout
    headings = re.findall(r"<h2>(.*?)</h2>", dom)
    assert headings == TITLES
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', dom)
    assert len(images) >= 6  # progress, funnel, tasks, hyperparameters, and the cells' pictures
    assert "Kendall's tau" in dom and "fANOVA importance" in dom
    shot = tmp_path / "shot.png"
    chromium("--window-size=1280,2400", f"--screenshot={shot}", f"file://{out}")
    from matplotlib.image import imread

    img = imread(str(shot))[..., :3]
    assert img.shape[:2] == (2400, 1280)
    assert (img < 0.5).mean() > 0.01 and img.std() > 0.05  # text and plots, not a blank page


def test_report_of_a_store_with_only_the_seeds(tmp_path):
    db = tmp_path / "seeds.db"
    run_search(cfg(candidates=0), str(db), executor=Scripted(staged))
    page = Path(build_report(str(db), str(tmp_path / "r.html"))).read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", page) == TITLES and "seed:GRU" in page


def test_best_so_far_leaves_out_a_baseline_kept_as_the_scale(tmp_path):
    """From the tanh RNN alone the GRU is the scale, not one of the search's cells: the best-so-far
    curve (the report's and the compare page's) is the tanh RNN's lineage, never the GRU's 1.0."""
    from cellsearch.cli.report import StoreData, best_so_far
    from tests.search.test_screen import flat

    db = str(tmp_path / "tanh.db")
    run_search(cfg(candidates=3, reeval_prob=0.0, pool_seeds=("Tanh",)), db, executor=Scripted(flat(0.36)))
    with Store(db, write=False) as st:
        best = [b for b in best_so_far(StoreData(st)) if b is not None]
    assert best and max(best) == pytest.approx(0.36 / 0.5) and min(best) == pytest.approx(0.3 / 0.5)


def test_bad_input_is_one_line(tmp_path, store, capsys):
    assert main(["report", "--db", str(tmp_path / "none.db")]) == 2
    assert "no search store" in capsys.readouterr().err
    Store(str(tmp_path / "empty.db")).close()
    with pytest.raises(StorageError, match="holds no search yet"):
        build_report(str(tmp_path / "empty.db"), str(tmp_path / "r.html"))
    assert main(["report", "--db", str(store), "-o", str(tmp_path / "no" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report" in err


def test_a_duplicate_of_a_promoted_child_stays_a_duplicate_in_the_funnel():
    """The funnel gives a screened child its promotion's outcome; a later proposal of the same cell
    (a duplicate, not trained) is not counted as scored too (the compare page of the aging searches
    counted 30 scored children where the store holds 18)."""
    from cellsearch.cli.report import StoreData

    d = object.__new__(StoreData)
    d.steps = [{"step": 5, "kind": "child", "cell_hash": "a", "outcome": "screened", "detail": {"rung": 0}},
               {"step": 6, "kind": "child", "cell_hash": "a", "outcome": "duplicate", "detail": {}},
               {"step": 7, "kind": "promote", "cell_hash": "a", "outcome": "scored", "detail": {"score": 1.0}}]
    assert [(r["proposed"], r["outcome"]) for r in d.children()] == [(5, "scored"), (6, "duplicate")]
