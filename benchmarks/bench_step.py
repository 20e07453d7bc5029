"""Training steps per second of a compiled LSTM/GRU graph against flax and torch, same sizes.

Each contender is a whole language model (embedding, RNN layers, linear readout, softmax
cross-entropy, SGD update), so the figure is what a search pays per training step.

* ``char``: batch 32, 100 steps, hidden 128, vocabulary 40, 1 layer;
* ``ptb``: batch 20, 35 steps, hidden 200, vocabulary 10,000, 2 layers.

Contenders: the cellsearch-compiled ``LSTM`` graph and ``GRU-RA`` graph (the same math as
flax/torch GRUs) and the paper's ``GRU``; flax linen ``OptimizedLSTMCell`` / ``GRUCell`` in
``nn.RNN``; torch ``nn.LSTM`` / ``nn.GRU`` (CPU build, if installed). Ratios are against flax and
torch measured in the same run.

On a GPU the LSTM also meets **cuDNN** (``jax.experimental.rnn.lstm``, one fused multi-layer
kernel: the physical anchor), and ``--variants`` adds the cellsearch LSTM with the input
projections hoisted out of the loop or not, at several ``unroll`` values (``hoist=1,unroll=4``
and so on), each reported against flax and cuDNN.

``--dtypes float32,bfloat16`` times each contender in each computation dtype (mixed precision:
float32 parameters, loss and update; flax's cells with ``dtype=bfloat16``; torch in float32 only)
and reports each bfloat16 figure against the same model's float32 (``vs_float32``).

Contenders are timed in interleaved rounds and the best round is kept (``common.best_of``).

Usage: ``python benchmarks/bench_step.py [--sizes char,ptb] [--repeat 5] [--rounds 6]
[--variants hoist=0,hoist=1,hoist=1/unroll=4] [--dtypes float32,bfloat16] [--no-cudnn]``
"""

from __future__ import annotations

import argparse

from common import best_of, emit, table

SIZES = {"char": dict(batch=32, time=100, hidden=128, vocab=40, layers=1),
         "ptb": dict(batch=20, time=35, hidden=200, vocab=10_000, layers=2)}


def sgd_runner(loss_fn, params):
    """``run()``: one jitted training step of ``loss_fn`` (clip 5, SGD 0.1), the same for
    every JAX contender, waiting for its result."""
    import jax
    import optax

    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.sgd(0.1))

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    box = [params, opt.init(params)]

    def run():
        box[0], box[1], loss = step(*box)
        jax.block_until_ready(loss)

    return run


def ours(cell_name, sz, hoist=None, unroll=1, dtype="float32"):
    import jax
    import jax.numpy as jnp

    from cellsearch.evolve.spaces import find_seed
    from cellsearch.nn.compile import compile_cell
    from cellsearch.nn.model import init_model, loss_fn
    from cellsearch.tasks.base import Batch, TaskSpec

    spec = TaskSpec("bench", sz["vocab"], sz["vocab"], sz["time"])
    cell = compile_cell(find_seed(cell_name))
    if hoist is not None:
        cell = cell._replace(scan=lambda p, c, xs, unroll=1, hoist=None, _s=cell.scan: _s(p, c, xs, unroll=unroll,
                                                                                           hoist=bool(hoist)))
    params = jax.tree.map(jnp.asarray, init_model(0, cell, spec, sz["hidden"], sz["layers"]))
    tokens = jax.random.randint(jax.random.key(0), (sz["batch"], sz["time"] + 1), 0, sz["vocab"])
    batch = Batch(tokens[:, :-1], tokens[:, 1:], jnp.ones((sz["batch"], sz["time"])), jnp.zeros((sz["batch"], sz["time"])))
    dt = None if dtype == "float32" else jnp.dtype(dtype)
    return sgd_runner(lambda q: loss_fn(cell, q, batch, spec, unroll=unroll, dtype=dt), params)


def cudnn_model(sz, reference: bool = False):
    """The same language model on ``jax.experimental.rnn.lstm`` (cuDNN; GPU only), or on its
    pure-JAX reference ``lstm_ref`` (``reference=True``: runs anywhere, to check this code)."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.experimental import rnn

    H, L, V, B, T = sz["hidden"], sz["layers"], sz["vocab"], sz["batch"], sz["time"]
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {"embed": jax.random.uniform(k1, (V, H), minval=-0.1, maxval=0.1),
              "lstm": rnn.init_lstm_weight(k2, H, H, L, False),
              "out": jax.random.uniform(k3, (H, V), minval=-0.1, maxval=0.1), "b": jnp.zeros(V)}
    tokens = jax.random.randint(jax.random.key(1), (B, T + 1), 0, V)
    lengths = jnp.full((B,), T, jnp.int32)

    def loss_fn(p):
        x = p["embed"][tokens[:, :-1]]
        h0 = c0 = jnp.zeros((L, B, H))
        if reference:
            w = rnn.unpack_lstm_weights(p["lstm"], H, H, L, False)
            y, _, _ = rnn.lstm_ref(x, h0, c0, *w, lengths, H, H, L, 0.0, False)
        else:
            y, _, _ = rnn.lstm(x, h0, c0, p["lstm"], lengths, H, H, L, 0.0, False)
        logits = y @ p["out"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    return sgd_runner(loss_fn, params)


def variant(text: str) -> dict:
    """``hoist=1/unroll=4`` -> ``{"hoist": 1, "unroll": 4}``."""
    out = {}
    for part in text.split("/"):
        k, _, v = part.partition("=")
        if k not in ("hoist", "unroll") or not v.isdigit():
            raise SystemExit(f"--variants: {part!r} is not hoist=0|1 or unroll=N")
        out[k] = int(v)
    return out


def flax_model(kind, sz, dtype="float32"):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn

    cell_cls = nn.OptimizedLSTMCell if kind == "lstm" else nn.GRUCell

    class LM(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(sz["vocab"], sz["hidden"])(tokens)
            for _ in range(sz["layers"]):
                x = nn.RNN(cell_cls(sz["hidden"], dtype=jnp.dtype(dtype)))(x)
            return nn.Dense(sz["vocab"], dtype=jnp.dtype(dtype))(x).astype(jnp.float32)

    model = LM()
    tokens = jax.random.randint(jax.random.key(0), (sz["batch"], sz["time"] + 1), 0, sz["vocab"])
    params = model.init(jax.random.key(1), tokens[:, :-1])

    def loss_fn(p):
        logits = model.apply(p, tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    return sgd_runner(loss_fn, params)


def torch_model(kind, sz):
    import torch

    torch.manual_seed(0)
    rnn_cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    emb = torch.nn.Embedding(sz["vocab"], sz["hidden"])
    rnn = rnn_cls(sz["hidden"], sz["hidden"], num_layers=sz["layers"], batch_first=True)
    out = torch.nn.Linear(sz["hidden"], sz["vocab"])
    params = [*emb.parameters(), *rnn.parameters(), *out.parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    tokens = torch.randint(0, sz["vocab"], (sz["batch"], sz["time"] + 1))

    def run():
        opt.zero_grad()
        y, _ = rnn(emb(tokens[:, :-1]))
        loss = torch.nn.functional.cross_entropy(out(y).reshape(-1, sz["vocab"]), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="char,ptb")
    ap.add_argument("--repeat", type=int, default=5, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds; the best is kept")
    ap.add_argument("--variants", default="", help="extra cellsearch LSTM variants, e.g. hoist=0,hoist=1/unroll=4")
    ap.add_argument("--dtypes", default="float32", help="computation dtypes, e.g. float32,bfloat16")
    ap.add_argument("--no-cudnn", action="store_true", help="leave cuDNN out (it is only tried on a GPU)")
    args = ap.parse_args()
    import jax

    cudnn = not args.no_cudnn and jax.default_backend() == "gpu"
    variants = {f"LSTM {v}": variant(v) for v in args.variants.split(",") if v}
    try:
        import torch

        torch.set_num_threads(max(1, __import__("os").cpu_count()))
    except ImportError:
        torch = None
    rows = []
    for size in args.sizes.split(","):
        sz = SIZES[size]
        for kind, graph_names in (("lstm", ["LSTM"]), ("gru", ["GRU-RA", "GRU"])):
            f32 = {}
            for dtype in args.dtypes.split(","):
                mine = {g: ours(g, sz, dtype=dtype) for g in graph_names}
                if kind == "lstm" and dtype == "float32":
                    mine.update({name: ours("LSTM", sz, **v) for name, v in variants.items()})
                peers = {"flax": flax_model(kind, sz, dtype),
                         **({"torch": torch_model(kind, sz)} if torch and dtype == "float32" else {}),
                         **({"cudnn": cudnn_model(sz)} if cudnn and kind == "lstm" and dtype == "float32" else {})}
                t = best_of({**peers, **mine}, rounds=args.rounds, repeat=args.repeat)
                if dtype == "float32":
                    f32 = t
                for name in peers:
                    emit({"bench": "step", "size": size, "dtype": dtype, "model": f"{name}-{kind}",
                          "steps_per_s": 1 / t[name]})
                for g in mine:
                    rec = {"bench": "step", "size": size, "dtype": dtype, "model": f"cellsearch-{g}",
                           "steps_per_s": 1 / t[g], "vs_flax": t["flax"] / t[g],
                           "vs_torch": (t["torch"] / t[g]) if "torch" in t else None,
                           "vs_float32": (f32[g] / t[g]) if g in f32 and dtype != "float32" else None,
                           **({"vs_cudnn": t["cudnn"] / t[g]} if "cudnn" in t else {})}
                    emit(rec)
                    rows.append({**rec, "flax_steps_per_s": 1 / t["flax"],
                                 "torch_steps_per_s": (1 / t["torch"]) if "torch" in t else None})
    print()
    print(table(rows, ["size", "dtype", "model", "steps_per_s", "flax_steps_per_s", "torch_steps_per_s", "vs_flax",
                       "vs_torch", "vs_float32", *(["vs_cudnn"] if cudnn else [])]))


if __name__ == "__main__":
    main()
