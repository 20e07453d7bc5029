"""Equations and DOT."""

from cellsearch.render import render_image, to_dot, to_equations, to_text
from cellsearch.spaces import find_seed


def test_lstm_equations_in_paper_notation():
    eq = to_equations(find_seed("LSTM"))
    assert "f = sigm(W_xf x + W_hf h + b_f)" in eq
    assert "c' = f * c + i * g" in eq
    assert eq[-1] == "h' = o * tanh(c')"


def test_mut1_and_gru_equations():
    assert "z = sigm(W_xz x + b_z)" in to_equations(find_seed("MUT1"))
    assert "u = tanh(W_0u (r * h) + b_u + tanh(x))" in to_equations(find_seed("MUT1"))
    assert to_equations(find_seed("GRU"))[-1] == "h' = z * h + (1 - z) * u"


def test_peepholes_render_as_vectors():
    assert "f = sigm(W_xf x + W_hf h + p_cf * c + b_f)" in to_equations(find_seed("Vanilla"))


def test_text_header_has_param_formula():
    assert to_text(find_seed("LSTM")).splitlines()[0].endswith("params 8n^2 + 4n")


def test_dot_lists_every_node_and_edge():
    g = find_seed("GRU")
    dot = to_dot(g)
    assert dot.startswith('digraph "GRU"')
    for n in g:
        assert f'"{n}" [' in dot
    assert dot.count("->") == g.number_of_edges()


def test_image_without_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    import pytest

    from cellsearch.errors import CellSearchError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CellSearchError, match="Graphviz"):
        render_image(find_seed("GRU"), str(tmp_path / "x.svg"))
