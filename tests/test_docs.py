"""Every Python snippet of the README and of ``docs/`` runs, exactly as written.

Each ```python block runs in its own namespace, in a folder that holds what the pages assume a
reader made before (a run saved by ``cellsearch train ... --save runs/lstm-small``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [(page, i, code) for page in PAGES
            for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))]


def test_the_pages_hold_snippets():
    assert {p.name for p, _, _ in SNIPPETS} >= {"README.md", "flax.md", "protocol.md"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from cellsearch.cli.main import main

    d = tmp_path_factory.mktemp("docs")
    old = os.getcwd()
    os.chdir(d)
    try:
        assert main(["train", "LSTM", "--task", "arithmetic", "--steps", "5", "--settings", "1",
                     "--no-compile-cache", "--save", "runs/lstm-small"]) == 0
    finally:
        os.chdir(old)
    return d


@pytest.mark.parametrize("page,i,code", SNIPPETS, ids=[f"{p.name}:{i}" for p, i, _ in SNIPPETS])
def test_snippet_runs_as_written(page, i, code, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    exec(compile(code, f"{page.name} snippet {i}", "exec"), {"__name__": f"snippet_{i}"})


CITED = re.compile(r"benchmarks/README\.md`*\)?,?\s*\(?[\"“]([^\"”]+)[\"”]")


def test_every_cited_benchmark_heading_exists():
    """Code and docs cite measured numbers by a heading of ``benchmarks/README.md``: each cited
    heading is there (a renamed or dropped section would leave a claim without its figures)."""
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    headings = [h.replace("`", "") for h in re.findall(r"^#+ (.*)$", readme, re.M)]
    sources = [*ROOT.glob("cellsearch/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("tests/**/*.py")]
    cited = {(c.replace("\n", " ").replace("`", ""), p.relative_to(ROOT)) for p in sources
             for c in CITED.findall(re.sub(r"\s*\n\s*#?\s*", " ", p.read_text()))}
    assert len({c for c, _ in cited}) >= 10
    missing = sorted({(c, str(p)) for c, p in cited if not any(h.startswith(c) for h in headings)})
    assert not missing, missing
