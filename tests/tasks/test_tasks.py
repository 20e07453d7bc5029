"""Tasks: encodings, determinism, metrics on hand-made predictions, data errors."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

from cellsearch.errors import ConfigError, DataError
from cellsearch.nn.model import sums_from_logits
from cellsearch.nn.train import summarize
from cellsearch.tasks import make_task
from cellsearch.tasks.arithmetic import decode
from cellsearch.tasks.base import Batch
from cellsearch.tasks.xml import GT, LT, SLASH


def same(a: Batch, b: Batch) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["memorize", "arithmetic", "xml"])
def test_batches_are_deterministic_from_the_seed(name):
    t = make_task(name)
    a = t.train_batch(np.random.default_rng(5), 8)
    b = t.train_batch(np.random.default_rng(5), 8)
    c = t.train_batch(np.random.default_rng(6), 8)
    assert same(a, b) and not same(a, c)
    assert same(t.eval_batches()[0], make_task(name).eval_batches()[0])
    assert not same(t.eval_batches("valid")[0], t.eval_batches("test")[0])
    assert a.inputs.shape == (8, t.spec.seq_len) and a.inputs.max() < t.spec.vocab_size


def test_memorize_encoding():
    b = make_task("memorize").train_batch(np.random.default_rng(0), 4)
    for i in range(4):
        row = list(b.inputs[i]) + [b.targets[i, -1]]
        assert row[5] == 26 and row[:5] == row[6:]  # s1..s5 = s1..s5
        assert list(np.nonzero(b.mask[i])[0]) == [5, 6, 7, 8, 9]
        assert list(b.targets[i][b.mask[i] > 0]) == row[:5]


def test_arithmetic_rows_are_correct_sums():
    t = make_task("arithmetic", max_digits=8)
    rng = np.random.default_rng(1)
    for _ in range(200):
        text, start = t.example(rng)
        question, answer = text[:-1].split("=")
        digits = "".join(c for c in question if not c.isalpha())
        m = re.fullmatch(r"(-?\d+)([+-])(-?\d+)", digits)  # operands may be negative: 3+-12
        a, op, b = m[1], m[2], m[3]
        assert int(answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert len(a.lstrip("-")) <= 8 and len(b.lstrip("-")) <= 8 and text[start:] == answer + "."
        assert not any(c.isalpha() for c in answer)
    b = t.train_batch(rng, 4)
    for i in range(4):
        scored = decode(b.targets[i][b.mask[i] > 0])
        full = decode(list(b.inputs[i][:1]) + list(b.targets[i]))
        assert full.split("=")[1].startswith(scored) and scored.endswith(".")


def test_xml_is_well_nested_and_closing_mask_marks_closing_names():
    t = make_task("xml", seq_len=400)
    toks, flags = t.document(np.random.default_rng(3))
    stack, i = [], 0
    while i < len(toks):
        assert toks[i] == LT
        close = toks[i + 1] == SLASH
        j = toks.index(GT, i)
        name = toks[i + 1 + close:j]
        assert 2 <= len(name) <= 10
        if close:
            assert stack.pop() == name and all(flags[i + 2:j + 1]) and not any(flags[i:i + 2])
        else:
            stack.append(name)
            assert not any(flags[i:j + 1])
        i = j + 1
    assert not stack


def test_accuracy_and_nll_on_hand_made_predictions():
    spec = make_task("memorize").spec
    targets = np.array([[1, 2, 3, 4]])
    batch = Batch(np.zeros_like(targets), targets, np.array([[0, 1, 1, 1]], np.float32),
                  np.array([[0, 0, 0, 1]], np.float32))
    logits = np.full((1, 4, spec.output_size), -1e9, np.float32)
    for t, pred in enumerate([1, 2, 0, 4]):  # right, right, wrong, right
        logits[0, t, pred] = 0.0
    s = summarize({k: float(v) for k, v in sums_from_logits(jnp.asarray(logits), batch, spec).items()}, spec)
    assert s["accuracy"] == pytest.approx(2 / 3)  # position 0 is not scored
    assert s["closing_accuracy"] == 1.0
    uniform = np.zeros((1, 4, spec.output_size), np.float32)
    s = summarize({k: float(v) for k, v in sums_from_logits(jnp.asarray(uniform), batch, spec).items()}, spec)
    assert s["nll"] == pytest.approx(np.log(spec.output_size), rel=1e-5)
    assert s["perplexity"] == pytest.approx(spec.output_size, rel=1e-4)


def test_bernoulli_nll_sums_over_notes():
    from cellsearch.tasks.base import TaskSpec

    spec = TaskSpec("music", 88, 88, 2, dense_input=True, output="bernoulli", score="exp_neg_nll")
    y = np.zeros((1, 2, 88), np.float32)
    batch = Batch(y, y, np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32))
    s = summarize({k: float(v) for k, v in sums_from_logits(jnp.zeros((1, 2, 88)), batch, spec).items()}, spec)
    assert s["nll"] == pytest.approx(88 * np.log(2), rel=1e-5)
    assert s["score"] == pytest.approx(np.exp(-88 * np.log(2)), rel=1e-4)


def test_ptb_reads_the_shared_files(ptb_dir):
    t = make_task("ptb", data_dir=ptb_dir.parent, eval_tokens=2000)
    assert t.spec.vocab_size == 10_000
    assert len(t.train_ids) == 929_589
    assert t.vocab[0] == "the" and "<eos>" in t.index and "<unk>" in t.index
    b = t.train_batch(np.random.default_rng(0), 3)
    assert np.array_equal(b.inputs[:, 1:], b.targets[:, :-1])
    assert len(t.eval_batches()) == -(-(2000 // 35) // 20)  # the last, shorter batch is kept (padded)
    assert t.eval_batches()[-1].mask.sum() == (2000 // 35 % 20) * 35


def test_ptb_missing_or_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="ptb.train.txt' not found in .*--data-dir"):
        make_task("ptb", data_dir=tmp_path)
    d = tmp_path / "ptb"
    d.mkdir()
    (d / "ptb.train.txt").write_bytes(b"\xff\xfe\x00binary")
    (d / "ptb.valid.txt").write_text("a b\n")
    (d / "ptb.test.txt").write_text("a b\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        make_task("ptb", data_dir=tmp_path)
    (d / "ptb.train.txt").write_text(" the cat sat \n" * 60)
    (d / "ptb.valid.txt").write_text(" the dog \n" * 60)
    (d / "ptb.test.txt").write_text(" the cat \n" * 60)
    with pytest.raises(DataError, match="word 'dog' is not in the training vocabulary"):
        make_task("ptb", data_dir=tmp_path)


def test_music_when_present(data_dir):
    if not (data_dir / "music" / "Nottingham.mat").exists():
        pytest.skip("music data not present")
    t = make_task("nottingham", data_dir=data_dir, seq_len=16)
    b = t.train_batch(np.random.default_rng(0), 2)
    assert b.inputs.shape == (2, 16, 88) and set(np.unique(b.inputs)) <= {0.0, 1.0}
    assert np.array_equal(b.inputs[:, 1:], b.targets[:, :-1])


def test_unknown_task_and_option():
    with pytest.raises(ConfigError, match="tasks: memorize, arithmetic"):
        make_task("sorting")
    with pytest.raises(ConfigError, match="bad option"):
        make_task("xml", depth=3)
