"""The parts of a self-contained HTML page: figures as data URIs, the stylesheet, and
writing the page atomically. Shared by the report (:mod:`cellsearch.cli.report`) and the
comparison of searches (:mod:`cellsearch.cli.compare`). Imports nothing from JAX.
"""

from __future__ import annotations

import base64
import html
import io
import os

from cellsearch.errors import ConfigError


def data_uri(png: bytes) -> str:
    """A PNG as an ``<img src>`` that needs no file and no network."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buf.getvalue())


def figure(w: float = 7.0, h: float = 3.2, n: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, n, figsize=(w, h))


CSS = """body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{margin-bottom:0.2em} h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}
.meta{color:#555} img{max-width:100%} .cell{border:1px solid #ddd;border-radius:6px;padding:0.6em 1em;margin:1em 0}
.row{display:flex;gap:1.5em;align-items:flex-start} .pic{max-width:420px;border:1px solid #eee}
pre{background:#f6f6f6;padding:0.5em;font-size:0.85em;white-space:pre-wrap} table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 8px;font-size:0.9em} .edits{color:#666;font-size:0.85em}
.kpi{display:inline-block;margin-right:2em;font-size:1.1em} .kpi b{font-size:1.4em}"""


def write_page(out: str, title: str, meta: str, sections: list[str], refresh: int | None = None) -> str:
    """Writes one self-contained page (atomically: a temporary file, then a rename)."""
    head = f"<meta http-equiv='refresh' content='{int(refresh)}'>" if refresh else ""
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{head}<title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>"
            + "\n".join(sections) + "</body></html>")
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except OSError as e:
        raise ConfigError(f"cannot write the report to {out!r}: {e.strerror}") from None
    return out
