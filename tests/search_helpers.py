"""A tiny search configuration that runs in seconds."""

from __future__ import annotations

from cellsearch.config import SearchConfig, TrainConfig
from cellsearch.hparams import HParamSpace

SMALL = HParamSpace(layers=(1,), param_budget=(200,), learning_rate=(0.5, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,))


def tiny_config(**kw) -> SearchConfig:
    base = dict(
        space="tiny", tasks=("arithmetic", "xml"), candidates=3, pool_size=3, settings_per_task=2, init_settings=2,
        reeval_prob=0.3, filter_threshold=0.0, hurdle=0.0, hparams=SMALL, filter_hparams=SMALL,
        budgets={"arithmetic": (200,), "xml": (200,)},
        train=TrainConfig(steps=6, batch_size=4, chunk=6), filter_train=TrainConfig(steps=3, batch_size=4, chunk=3),
        task_options={t: {"eval_batches": 1, "eval_batch_size": 8} for t in ("arithmetic", "xml", "memorize")}
        | {"arithmetic": {"max_digits": 1, "eval_batches": 1, "eval_batch_size": 8},
           "xml": {"seq_len": 8, "eval_batches": 1, "eval_batch_size": 8}},
    )
    base.update(kw)
    return SearchConfig(**base)
