"""The op table: kinds, arities, activation names with a Linear(a, x) scale, binary ops."""

from __future__ import annotations

import pytest

from cellsearch.cell.ops import (
    ACTIVATIONS,
    BINARY_OPS,
    OPS,
    PAPER_ACTIVATIONS,
    PAPER_BINARY_OPS,
    check_binary_op,
    get_op,
    parse_activation,
)
from cellsearch.errors import ConfigError, UnknownOpError


def test_table_kinds_and_paper_sets():
    assert set(PAPER_BINARY_OPS) <= set(BINARY_OPS) == {"add", "mul", "sub"}
    assert {"tanh", "sigmoid", "relu", "identity"} <= set(ACTIVATIONS)
    for name in PAPER_ACTIVATIONS:
        parse_activation(name)
    assert all(OPS[b].arity == 2 for b in BINARY_OPS)


def test_parse_activation_reads_linear_scales():
    assert parse_activation("tanh") == ("tanh", None)
    assert parse_activation("linear:0.9") == ("linear", 0.9)
    with pytest.raises(ConfigError):
        parse_activation("gelu")
    with pytest.raises(ConfigError):
        parse_activation("linear:abc")


def test_unknown_ops_name_the_node():
    with pytest.raises(UnknownOpError, match="'n7'"):
        get_op("softplus", "n7")
    with pytest.raises(ConfigError):
        check_binary_op("div")
    assert check_binary_op("sub") == "sub"
