"""The mutation driver of Jozefowicz et al. 2015 (§3.5): how many edits a child gets, where, and
the resampling until the child is valid, new and alive.

The edits themselves (pure functions registered in :data:`cellsearch.evolve.edits.MUTATIONS`),
their sites and rule 6's operand rules are :mod:`cellsearch.evolve.edits`. **Edit sites.** The
edits act on the computation: the fixed nodes (the input, the previous states, constants and the
state sinks, i.e. the ``output`` nodes that name a state's new value) are never edit sites. The
paper's graph has no separate sink node (a state's new value *is* the node that computes it), so
an edit "on a sink" is an artefact of this representation, and it put an activation on many
children's state updates (``benchmarks/README.md``, "Children that live").

**How many edits** (:class:`EditCount`): ``"paper"`` is §3.5's driver, ``p ~ U[0, max_rate]``
and every computation node, in a fixed order, edited with probability ``p``; ``"K"`` or
``"K-L"`` applies a number of edits drawn uniformly from ``K..L``, each at a computation node
drawn uniformly (one edit per child is EXAMM's default; Ororbia et al. 2019).
Either way an edit is drawn uniformly from those that apply to its node; the child is
pruned of dead nodes, validated, and resampled until it is valid and differs from its
parent, up to ``max_attempts`` times. :func:`mutate_live` also resamples a child that an
``accept`` check (the liveness probe, :mod:`cellsearch.cell.probe`) rejects. Every random draw
comes from the ``numpy.random.Generator`` passed in, so the same seed gives the same child.

This module imports nothing from JAX.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import networkx as nx
import numpy as np

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import CellGraph, prune, validate
from cellsearch.errors import InvalidCellError, MutationFailed
from cellsearch.evolve.edits import MUTATIONS, AppliedMutation, MutationSpace, applicable, edit_sites


class EditCount(NamedTuple):
    """How many edits a child gets: ``"paper"`` (§3.5: every computation node with
    probability ``p ~ U[0, max_rate]``) or a range ``lo..hi`` drawn uniformly.

    >>> EditCount.parse("1-3"), EditCount.parse("2").hi, EditCount.parse("paper").paper
    (EditCount(lo=1, hi=3), 2, True)
    """

    lo: int = 0
    hi: int = 0

    @property
    def paper(self) -> bool:
        return self.hi == 0

    @classmethod
    def parse(cls, text: str) -> EditCount:
        text = str(text).strip()
        if text == "paper":
            return cls(0, 0)
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
        if not m or int(m.group(1)) < 1 or int(m.group(2) or m.group(1)) < int(m.group(1)):
            raise ValueError(f"edits must be 'paper', 'K' or 'K-L' with 1 <= K <= L, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2) or m.group(1)))

    def __str__(self) -> str:
        return "paper" if self.paper else str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


def _edit(child: CellGraph, node: str, rng, space) -> tuple[CellGraph, AppliedMutation] | None:
    names = applicable(child, node, space)
    if not names:
        return None
    name = names[rng.integers(len(names))]
    out = (getattr(space, "edits", None) or MUTATIONS)[name].apply(child, node, rng=rng, space=space)
    if out is None:
        return None
    return out[0], AppliedMutation(name, node, out[1])


def _draw_edits(g: CellGraph, rng, space, count: EditCount, max_rate: float):
    """One attempt's edits (possibly none) under ``count``."""
    child, edits = g, []
    if count.paper:
        p = rng.uniform(0.0, max_rate)
        for node in edit_sites(g):
            if node not in child or rng.uniform() >= p:
                continue
            out = _edit(child, node, rng, space)
            if out is not None:
                child = out[0]
                edits.append(out[1])
        return child, edits
    want = int(rng.integers(count.lo, count.hi + 1))
    for _ in range(4 * want):  # an edit that cannot be made is drawn again, a bounded number of times
        if len(edits) >= want:
            break
        sites = edit_sites(child)
        if not sites:
            break
        out = _edit(child, sites[rng.integers(len(sites))], rng, space)
        if out is not None:
            child = out[0]
            edits.append(out[1])
    return child, edits


def mutate(
    g: CellGraph,
    *,
    rng: np.random.Generator,
    space: MutationSpace,
    max_attempts: int = 200,
    max_rate: float = 1.0,
    edits: EditCount | str = "paper",
) -> tuple[CellGraph, list[AppliedMutation]]:
    """Draws one valid child of ``g`` that differs from it (§3.5).

    Args:
      g: the parent; it is never modified.
      rng: the source of every random draw.
      space: the search space (activation and binary-op sets, mutations, operand rule).
      max_attempts: resamples before giving up.
      max_rate: with ``edits="paper"``, ``p`` is drawn from ``U[0, max_rate]``; the paper's
        is 1 ([S1+M]); lower values give children closer to their parents.
      edits: how many edits (:class:`EditCount` or its text: ``"paper"``, ``"2"``, ``"1-3"``).

    Returns:
      ``(child, edits)``: the frozen child and the edits that made it.

    Raises:
      MutationFailed: no valid, different child within ``max_attempts``; names the last rule broken.
    """
    count = edits if isinstance(edits, EditCount) else EditCount.parse(edits)
    parent_hash = structural_hash(g)
    last = "no edit applied"
    for _ in range(max_attempts):
        child, applied = _draw_edits(g, rng, space, count, max_rate)
        if not applied:
            continue
        child = prune(child)
        try:
            validate(child)
        except InvalidCellError as e:
            last = f"{e.rule} ({e})"
            continue
        if structural_hash(child) == parent_hash:
            last = "child equals parent"
            continue
        child.graph["name"] = ""
        return nx.freeze(child), applied
    raise MutationFailed(
        f"no valid child of cell {parent_hash} in {max_attempts} attempts; last failure: {last}"
    )


def mutate_live(
    g: CellGraph,
    *,
    rng: np.random.Generator,
    space: MutationSpace,
    accept: Callable[[CellGraph], str | None] | None = None,
    walk: int = 1,
    max_rejects: int = 50,
    **kwargs,
) -> tuple[CellGraph, list[AppliedMutation], list[str]]:
    """A child of ``g`` after ``walk`` successive mutations, resampled while ``accept(child)``
    returns a reason to reject it (the liveness probe, :func:`cellsearch.cell.probe.liveness`).

    Returns ``(child, edits, rejected)``: ``rejected`` holds the reason for every child drawn
    and rejected before this one. Raises :class:`MutationFailed` after ``max_rejects``
    rejections (the message names the last reason), or as :func:`mutate` does.
    """
    rejected: list[str] = []
    while True:
        child, applied = g, []
        for _ in range(walk):
            child, e = mutate(child, rng=rng, space=space, **kwargs)
            applied += e
        why = accept(child) if accept is not None else None
        if why is None:
            return child, applied, rejected
        rejected.append(why)
        if len(rejected) >= max_rejects:
            raise MutationFailed(f"{max_rejects} children of cell {structural_hash(g)} in a row failed the "
                                 f"liveness probe; last: {why}")
