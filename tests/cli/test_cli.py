"""The first CLI verbs, run in-process through ``main``."""

from __future__ import annotations

import json

import pytest

from cellsearch.cell.graph import save
from cellsearch.cli.main import VERBS, main
from cellsearch.evolve.spaces import find_seed


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_help_page_prints(capsys):
    """`cellsearch --help` and each verb's --help print (a bare % in a help text once made
    argparse raise a TypeError instead)."""
    pages = {}
    for argv in ([], *([name] for name, *_ in VERBS)):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--help"])
        assert e.value.code == 0, argv
        pages[tuple(argv)] = capsys.readouterr().out
        assert pages[tuple(argv)].startswith("usage: cellsearch"), argv
    assert "95 % interval" in pages[()] and all(name in pages[()] for name, *_ in VERBS)


def test_seeds_lists_counts(capsys):
    code, out, _ = run(capsys, "seeds", "--hidden", "10")
    assert code == 0
    assert any(line.split()[:1] == ["LSTM"] and line.split()[-1] == "840" for line in out.splitlines())
    code, out, _ = run(capsys, "seeds", "--space", "greff2015")
    assert "CIFG" in out and "FGR" in out


def test_show_seed_in_each_format(capsys, tmp_path):
    code, out, _ = run(capsys, "show", "LSTM")
    assert code == 0 and "c' = f * c + i * g" in out
    code, out, _ = run(capsys, "show", "GRU", "--format", "dot")
    assert out.startswith('digraph "GRU"')
    code, out, _ = run(capsys, "show", "MUT1", "--format", "json")
    assert json.loads(out)["name"] == "MUT1"


def test_show_graph_file_and_malformed_file(capsys, tmp_path):
    path = tmp_path / "cell.json"
    save(find_seed("MUT3"), str(path))
    code, out, _ = run(capsys, "show", "--graph", str(path))
    assert code == 0 and "z = sigm(" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"states": ["h"], "nodes": [{"id": "x", "op": "input"}, {"id": "a", "op": "gelu", "inputs": ["x"]}]}')
    code, out, err = run(capsys, "show", "--graph", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and "gelu" in err and str(bad) in err
    code, _, err = run(capsys, "show", "--graph", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read cell file" in err


def test_unknown_seed_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "show", "NOPE")
    assert code == 2 and "no seed cell named 'NOPE'" in err


def test_mutate_prints_children_with_edits(capsys):
    code, out, _ = run(capsys, "mutate", "LSTM", "--seed", "3", "-n", "2", "--dedup", "20")
    assert code == 0
    assert out.count("## child") == 2 and "#   " in out
    assert "duplicates in a stream of 20 children" in out
    _, again, _ = run(capsys, "mutate", "LSTM", "--seed", "3", "-n", "2")
    assert again.split("# duplicates")[0].strip() == out.split("\n# duplicates")[0].strip()


def test_train_prints_one_row_per_setting(capsys):
    code, out, _ = run(capsys, "train", "GRU", "--task", "memorize", "--steps", "20", "--settings", "3",
                       "--budget", "500", "--no-compile-cache")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["#", "lr", "init"] and len(lines) == 5
    assert lines[-1].startswith("best score")
    code, _, err = run(capsys, "train", "GRU", "--task", "ptb", "--data-dir", "/nonexistent", "--no-compile-cache")
    assert code == 2 and "ptb.train.txt' not found" in err


def tiny_ptb(path, rng):
    words = [f"w{i}" for i in range(30)]
    for name, n in (("ptb.train.txt", 120), ("ptb.valid.txt", 30), ("ptb.test.txt", 30)):
        lines = [" " + " ".join(rng.choice(words, 8)) + " " for _ in range(n)]
        (path / name).write_text("\n".join(lines) + "\n")


def test_train_explicit_settings_run_the_standard_protocol(capsys, tmp_path, rng):
    tiny_ptb(tmp_path, rng)
    argv = ["train", "GRU", "--task", "ptb", "--data-dir", str(tmp_path), "--hidden", "8", "--layers", "1",
            "--epochs", "2", "--bptt", "5", "--batch-size", "4", "--lr", "0.5", "--no-compile-cache",
            "--save", str(tmp_path / "run")]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "1x8" in err and "epoch  2/2" in err
    assert "test perplexity" in out and (tmp_path / "run" / "params.msgpack").exists()
    code, out2, err2 = run(capsys, *argv)  # the same command again: nothing left to train
    assert code == 0 and "epoch  " not in err2 and out2.split("saved")[0] == out.split("saved")[0]
    code, _, err = run(capsys, "train", "GRU", "--task", "arithmetic", "--preset", "zaremba-small")
    assert code == 2 and "standard protocol" in err
    import pytest

    with pytest.raises(SystemExit) as exit_:
        run(capsys, "train", "GRU", "--task", "ptb", "--data-dir", str(tmp_path), "--lr", "-1")
    assert exit_.value.code == 2 and "argument --lr: expected a positive number" in capsys.readouterr().err
