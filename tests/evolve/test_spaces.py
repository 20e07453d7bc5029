"""Search spaces load by name; bad settings fail at load time with a clear message."""

from __future__ import annotations

import sys
import types

import pytest

from cellsearch.errors import ConfigError
from cellsearch.evolve.spaces import find_seed, load_space, space_names


def test_known_spaces_and_seeds():
    assert {"jozefowicz2015", "greff2015", "tiny"} <= set(space_names())
    sp = load_space("jozefowicz2015")
    for name in ("Tanh", "LSTM", "LSTM-f", "LSTM-i", "LSTM-o", "LSTM-b", "GRU", "MUT1", "MUT2", "MUT3"):
        assert name in sp.seeds
    assert set(load_space("greff2015").seeds) >= {"NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"}
    assert sp.pool_seeds == ("LSTM", "GRU") and sp.baseline == "GRU"


@pytest.mark.parametrize(
    "attr, value, message",
    [
        ("ACTIVATIONS", ("tanh", "gelu"), "activation 'gelu' is not allowed"),
        ("ACTIVATIONS", ("linear:abc",), "activation 'linear:abc'"),
        ("BINARY_OPS", ("add", "div"), "binary op 'div'"),
        ("MUTATIONS", ("swap_activation", "crossover"), "mutation 'crossover' is not known"),
        ("OPERAND_RULE", "anything", "operand rule 'anything'"),
    ],
)
def test_bad_space_settings_fail_at_load(monkeypatch, attr, value, message):
    import search_spaces.tiny as tiny

    fake = types.ModuleType("search_spaces.broken")
    fake.__dict__.update({k: v for k, v in vars(tiny).items() if k.isupper()})
    setattr(fake, attr, value)
    monkeypatch.setitem(sys.modules, "search_spaces.broken", fake)
    monkeypatch.setattr("cellsearch.evolve.spaces.space_names", lambda: ["broken"])
    with pytest.raises(ConfigError, match=message) as err:
        load_space("broken")
    assert "search space 'broken'" in str(err.value)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="spaces: .*jozefowicz2015"):
        load_space("nope")
    with pytest.raises(ConfigError, match="seeds: .*LSTM"):
        find_seed("LSTMX")
