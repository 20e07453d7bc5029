"""``--set KEY=VALUE``: any field of a search's settings from the command line.

:func:`with_settings` applies the items to a :class:`~cellsearch.search.config.SearchConfig`
(a field, or a field of one of its parts with a dot), casting each text to the field's type.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from cellsearch.errors import ConfigError
from cellsearch.search.config import SearchConfig


def _cast(text: str, like: Any, key: str):
    """``text`` as the type of ``like`` (the field's current value)."""
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if key.endswith("rungs") or key == "screen":  # SHARE:FRACTION,... (a screen rung: SHARE:SETTINGS)
            second = int if key == "screen" else float
            return tuple((float(a), second(b)) for a, _, b in (v.strip().partition(":") for v in text.split(","))
                         if a) if text.strip().lower() not in ("", "none") else ()
        if isinstance(like, tuple):
            kind = type(like[0]) if like else str
            return tuple(_cast(v.strip(), kind(), key) for v in text.split(",") if v.strip())
        if like is None:
            return None if text.lower() == "none" else float(text) if "." in text else int(text)
        if isinstance(like, int | float | str):
            return type(like)(text)
    except ValueError:
        raise ConfigError(f"--set {key}={text}: expected {type(like).__name__}"
                          + (f" (comma-separated {type(like[0]).__name__}s)" if isinstance(like, tuple) and like else "")
                          ) from None
    raise ConfigError(f"--set {key}: this field ({type(like).__name__}) cannot be set from the command line")


SETTABLE = frozenset(f.name for f in fields(SearchConfig)) - {"budgets", "task_options", "cells_json"}


def with_settings(cfg: SearchConfig, items: list[str]) -> SearchConfig:
    """``cfg`` with ``--set KEY=VALUE`` items applied: a field of :class:`SearchConfig`
    (``hurdle=0.8``, ``edits=1``, ``reeval_prob=0.3``), or a field of one of its parts with
    a dot (``filter_hparams.learning_rate=0.3,1,2``, ``train.steps=800``). Lists are
    comma-separated; the result is checked as any config is.

    >>> with_settings(SearchConfig(), ["hurdle=0.8", "filter_hparams.learning_rate=0.3,1"]).filter_hparams.learning_rate
    (0.3, 1.0)
    """
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        head, _, sub = key.partition(".")
        if head not in SETTABLE:
            raise ConfigError(f"--set: unknown setting {head!r}; settings: {', '.join(sorted(SETTABLE))}")
        current = getattr(cfg, head)
        if sub:
            if not hasattr(current, "__dataclass_fields__") or sub not in current.__dataclass_fields__:
                raise ConfigError(f"--set: {head!r} has no field {sub!r}")
            value = replace(current, **{sub: _cast(text.strip(), getattr(current, sub), key)})
        else:
            if hasattr(current, "__dataclass_fields__"):
                raise ConfigError(f"--set: {head!r} has parts; set one with {head}.FIELD=VALUE")
            value = _cast(text.strip(), current, key)
        cfg = replace(cfg, **{head: value})
    return cfg

