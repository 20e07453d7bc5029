"""Tasks: held-out arithmetic problems, signed operands, task table and options."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cellsearch.errors import ConfigError
from cellsearch.tasks import TASKS, get_task, make_task, task_options
from cellsearch.tasks.arithmetic import decode


def questions(batch) -> set[str]:
    out = set()
    for row in batch.inputs:
        text = decode(row)
        out.add(re.sub("[a-z]", "", text.split("=")[0]))
    return out


@pytest.mark.parametrize("digits", [1, 3])
def test_arithmetic_validation_and_test_never_appear_in_training(digits):
    task = make_task("arithmetic", max_digits=digits)
    valid = set().union(*map(questions, task.eval_batches("valid")))
    test = set().union(*map(questions, task.eval_batches("test")))
    rng = np.random.default_rng(0)
    train = set().union(*(questions(task.train_batch(rng, 64)) for _ in range(100)))
    assert valid and test and len(train) > 100
    assert not (valid | test) & train
    assert not valid & test


def test_arithmetic_operands_are_signed_and_answers_right():
    task = make_task("arithmetic", max_digits=4)
    rng = np.random.default_rng(1)
    negative = 0
    for _ in range(300):
        text, start = task.example(rng)
        clean = re.sub("[a-z]", "", text)
        m = re.fullmatch(r"(-?\d+)([+-])(-?\d+)=(-?\d+)\.", clean)
        assert m, text
        a, op, b, ans = int(m[1]), m[2], int(m[3]), int(m[4])
        assert ans == (a + b if op == "+" else a - b)
        assert text[start:] == f"{ans}."
        negative += (a < 0) + (b < 0)
    assert 200 < negative < 400  # about half of 600 operands


def test_task_table_and_options():
    assert TASKS["ptb"].data == "ptb" and TASKS["arithmetic"].data is None
    assert task_options("ptb", {}, "/d") == {"data_dir": "/d"}
    assert task_options("xml", {"seq_len": 8}, "/d") == {"seq_len": 8}
    assert get_task("xml", {"seq_len": 8}) is get_task("xml", {"seq_len": 8})
    with pytest.raises(ConfigError, match="task 'arithmetic': max_digits must be in 1..18"):
        make_task("arithmetic", max_digits=30)
    with pytest.raises(ConfigError, match="bad option"):
        make_task("xml", colour="red")


def test_xml_tag_name_length_is_an_option():
    task = make_task("xml", min_name=1, max_name=1)
    toks, _ = task.document(np.random.default_rng(0))
    text = "".join("abcdefghijklmnopqrstuvwxyz<>/"[t] for t in toks)
    assert all(len(name) == 1 for name in re.findall(r"</?([a-z]+)>", text))
