"""Control over a search's inputs: --pool-seeds, --space FILE.py and --set, stored and checked."""

from __future__ import annotations

import pytest

from cellsearch.cell.graph import save
from cellsearch.cli.commands import search_config
from cellsearch.cli.main import build_parser
from cellsearch.cli.settings import with_settings
from cellsearch.errors import ConfigError, StorageError
from cellsearch.evolve.spaces import find_seed
from cellsearch.search.driver import open_store
from cellsearch.search.steps import Search, check_inputs

SPACE = '''from search_spaces.tiny import ACTIVATIONS, BINARY_OPS, MUTATIONS, OPERAND_RULE, SEEDS  # noqa: F401
BASELINE = "GRU"
POOL_SEEDS = ("Gated", "GRU")
'''


def _config(tmp_path, *extra):
    space = tmp_path / "my_space.py"
    if not space.exists():
        space.write_text(SPACE)
    cell = tmp_path / "mine.json"
    save(find_seed("MUT1"), str(cell))
    args = build_parser().parse_args(["search", "--quick", "--space", str(space), "--pool-seeds", f"Tanh,{cell}",
                                      "--set", "edits=2", "--set", "filter_hparams.learning_rate=0.3,1", *extra])
    return search_config(args)


def test_inputs_reach_the_search_and_its_stored_settings(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.space == str(tmp_path / "my_space.py") and len(cfg.space_sha) == 64
    assert cfg.pool_seeds == ("Tanh", "mine") and "mine" in cfg.cells_json
    assert cfg.edits == "2" and cfg.filter_hparams.learning_rate == (0.3, 1.0)
    check_inputs(cfg)
    db = str(tmp_path / "s.db")
    store = open_store(db, cfg)
    try:
        search = Search(cfg, store)
        assert set(search.seed_graphs) == {"Tanh", "mine", "GRU"} and len(search.seed_hashes) == 2
    finally:
        store.close()
    # a resumed search with another setting, or an edited space file, is refused
    with pytest.raises(StorageError, match="other settings"):
        open_store(db, with_settings(cfg, ["edits=1"]))
    (tmp_path / "my_space.py").write_text(SPACE + "\n# edited\n")
    with pytest.raises(StorageError, match="space_sha"):
        open_store(db, _config(tmp_path))


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no seed 'Nope'"):
        check_inputs(with_settings(_config(tmp_path), ["pool_seeds=Nope"]))
    with pytest.raises(ConfigError, match="unknown setting 'hurdl'"):
        _config(tmp_path, "--set", "hurdl=1")
    with pytest.raises(ConfigError, match="expected float"):
        _config(tmp_path, "--set", "hurdle=high")
    (tmp_path / "broken.py").write_text("SEEDS = {}\n")
    with pytest.raises(ConfigError, match="lacks a setting"):
        check_inputs(with_settings(_config(tmp_path), [f"space={tmp_path / 'broken.py'}"]))


def test_a_store_reads_alone_once_its_space_file_is_gone(tmp_path, capsys):
    """top, show, export, report and confirm work from what the store holds; only a resume needs
    the space file (and says which file is missing)."""
    import os

    from cellsearch.cli.main import main
    from cellsearch.search.driver import run_search
    from tests.search_helpers import tiny_config

    space = tmp_path / "my_space.py"
    space.write_text(SPACE)
    db = str(tmp_path / "s.db")
    cfg = tiny_config(space=str(space), candidates=3, pool_seeds=("Gated", "GRU"))
    run_search(cfg, db)
    os.remove(space)
    for argv in (["top", "--db", db], ["top", "--all", "--db", db], ["show", "1", "--db", db],
                 ["export", "1", "--db", db, "-o", str(tmp_path / "c.json")],
                 ["report", "--db", db, "-o", str(tmp_path / "r.html")],
                 ["confirm", "--db", db, "-k", "1", "--seeds", "2"]):
        assert main(argv) == 0, argv
    out = capsys.readouterr()
    assert "confirmed" in out.out and "Traceback" not in out.err
    with pytest.raises(ConfigError, match="does not exist"):
        run_search(cfg, db)


def test_a_population_search_keeps_the_quick_ladder(tmp_path):
    """`--quick --population P` screens as `--quick` does (its rungs and eta); a promoted child
    there trains from scratch, as the interpreter keeps no training states."""
    from cellsearch.search.config import quick_config

    cfg = _config(tmp_path, "--population", "4")
    assert cfg.population == 4 and cfg.screen == quick_config().screen and cfg.screen
    assert cfg.continue_rungs and not cfg.continues
    assert _config(tmp_path).continues
