"""Equations and DOT."""

from pathlib import Path

from cellsearch.cell.render import to_dot, to_equations, to_text
from cellsearch.cli.draw import render_image
from cellsearch.evolve.spaces import find_seed


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


def test_pictures_without_graphviz(tmp_path, monkeypatch):
    """With no `dot` on PATH a cell is still drawn (pure-Python layout), as SVG and PNG."""
    import shutil

    from matplotlib.image import imread

    monkeypatch.setattr(shutil, "which", lambda name: None)
    svg = render_image(find_seed("GRU"), str(tmp_path / "gru.svg"))
    text = Path(svg).read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    png = render_image(find_seed("LSTM"), str(tmp_path / "lstm.png"))
    img = imread(png)
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert (img[..., :3] < 0.5).mean() > 0.005  # ink on the page, not a blank image


def test_layout_puts_inputs_on_top_and_marks_the_subtrahend():
    from cellsearch.cli.draw import layout, operand_signs

    g = find_seed("GRU")
    pos = layout(g)
    top = min(y for _, y in pos.values())
    assert pos["x"][1] == pos["h_prev"][1] == top and pos["x"][0] < pos["h_prev"][0]
    assert pos["h"][1] == max(y for _, y in pos.values())
    assert all(pos[u][1] < pos[v][1] for u, v in g.edges)  # every edge points down
    sub = next(n for n, d in g.nodes(data=True) if d["op"] == "sub")
    assert operand_signs(g, sub) == {"n2": "+", "z": "−"}  # 1 - z


def test_bad_image_name_is_a_clear_error(tmp_path):
    import pytest

    from cellsearch.errors import CellSearchError

    with pytest.raises(CellSearchError, match="use a .svg, .png or .pdf"):
        render_image(find_seed("GRU"), str(tmp_path / "x.gif"))
