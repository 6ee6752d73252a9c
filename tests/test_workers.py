"""Every public function that takes ``workers`` gives bit-for-bit the same forward
and backward results for workers = 1, 2, 3 and None (CONTRIBUTING.md section 5).

The arrays are small, so the thresholds that decide how work is cut are lowered:
threads.MIN_TASK_SIZE (one task per slice, per group of slices, or one for all) and
attention._BLOCK_BYTES (several blocks of rows per slice). Cases cover masks with
fully masked rows, causal with N != M in both alignments, dropout, shared keys and
two-dimensional inputs. The recurrences run every model in every form, with an
initial state and a gradient flowing in through the final state.
"""

import inspect

import numpy as np
import pytest
from test_conventions import public_functions

from attention_np import attention as attention_module
from attention_np import (
    attention_backward,
    attention_forward,
    attention_weights,
    causal_mask,
    threads,
)
from attention_np.efficient import (
    block_attention_backward,
    block_attention_cache,
    block_attention_forward,
    favor_omega,
    flash_attention_backward,
    flash_attention_forward,
    linear_attention_backward,
    linear_attention_forward,
    sliding_window_attention_backward,
    sliding_window_attention_forward,
)
from attention_np.recurrences import (
    deltanet_backward,
    deltanet_forward,
    gated_deltanet_backward,
    gated_deltanet_forward,
    gla_backward,
    gla_forward,
    linear_attn_backward,
    linear_attn_forward,
    mamba2_backward,
    mamba2_forward,
    retention_backward,
    retention_forward,
    with_final_state_grad,
)

WORKERS = (1, 2, 3, None)
B, H, N, M, D, DV = 2, 3, 7, 5, 4, 6


def inputs(seed, n=N, m=M, k_heads=H, lead=(B,), dtype=np.float64):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(lead + (H, n, D))
    k = rng.standard_normal(lead + (k_heads, m, D))
    v = rng.standard_normal(lead + (k_heads, m, DV))
    return [a.astype(dtype) for a in (q, k, v)]


def holey_mask(seed, n=N, m=M):
    mask = np.random.default_rng(seed).random((B, H, n, m)) > 0.4
    mask[0, 1, 2] = False  # fully masked rows
    mask[1, 0, -1] = False
    return mask


def with_grads(forward, backward, arrays, **options):
    """A run(workers) -> [out, grads...] for a forward/backward pair."""

    def run(workers):
        if "dropout_p" in options:  # the same keep-mask for every run
            options["rng"] = np.random.default_rng(8)
        out, cache = forward(*arrays, workers=workers, **options)
        dout = np.random.default_rng(9).standard_normal(out.shape).astype(out.dtype)
        return [out, *backward(dout, cache)]

    return run


def core(**options):
    q, k, v = inputs(0, n=options.pop("n", N), m=options.pop("m", M))
    return with_grads(attention_forward, attention_backward, (q, k, v), **options)


def flash(**options):
    q, k, v = inputs(1, n=options.pop("n", N), m=options.pop("m", M))
    tiles = dict(block_q=3, block_k=2)
    return with_grads(
        flash_attention_forward, flash_attention_backward, (q, k, v), **tiles, **options
    )


def linear(**options):
    q, k, v = inputs(2, n=options.pop("n", N), m=options.pop("m", M))
    if options.get("feature_map") == "favor+":
        options["omega"] = favor_omega(D, 8, rng=np.random.default_rng(3))
    return with_grads(
        linear_attention_forward, linear_attention_backward, (q, k, v), **options
    )


def sliding(**options):
    q, k, v = inputs(4, n=11, m=11)
    return with_grads(
        sliding_window_attention_forward,
        sliding_window_attention_backward,
        (q, k, v),
        **options,
    )


def block_from_global(workers):
    q, k, v = inputs(5, n=6, m=8)
    full, _ = flash_attention_forward(q, k, v, causal=True, workers=1)
    _, lse_cache = flash_attention_forward(q, k, v, causal=True, workers=1)
    cache = block_attention_cache(
        q, k[..., :5, :], v[..., :5, :], full, lse_cache.lse, causal=True,
        block_q=2, block_k=3, workers=workers,
    )  # fmt: skip
    dout = np.random.default_rng(6).standard_normal(full.shape)
    return list(block_attention_backward(dout, cache))


def weights(**options):
    q, k, _ = inputs(7)
    return lambda workers: [attention_weights(q, k, workers=workers, **options)]


RECURRENCES = {  # model: forward, backward, the gates between v and initial_state
    "linear_attn": (linear_attn_forward, linear_attn_backward, ()),
    "retention": (retention_forward, retention_backward, ()),
    "gla": (gla_forward, gla_backward, ("per channel",)),
    "mamba2": (mamba2_forward, mamba2_backward, ("per head",)),
    "deltanet": (deltanet_forward, deltanet_backward, ("beta",)),
    "gated_deltanet": (
        gated_deltanet_forward,
        gated_deltanet_backward,
        ("per head", "beta"),
    ),
}


def recurrence(model, form, lead=(B, H)):
    """A run(workers) of a recurrence from a random initial state, with gradients
    flowing in through the output and the final state."""
    forward, backward, gates = RECURRENCES[model]
    rng = np.random.default_rng(12)
    q, k = rng.standard_normal((2, *lead, N, D))
    made = {
        "per channel": -rng.uniform(0.05, 1.0, (*lead, N, D)),  # log-decays
        "per head": -rng.uniform(0.05, 1.0, (*lead, N)),
        "beta": rng.uniform(0.1, 0.9, (*lead, N)),
    }
    arrays = [q, k / np.linalg.norm(k, axis=-1, keepdims=True)]
    arrays += [rng.standard_normal((*lead, N, DV)), *(made[g] for g in gates)]
    arrays.append(rng.standard_normal((*lead, D, DV)))  # initial_state

    def run(workers):
        out, cache = forward(*arrays, form=form, chunk_size=3, workers=workers)
        grads = np.random.default_rng(9)
        dout, dS = (grads.standard_normal(a.shape) for a in (out, cache.final_state))
        cache = with_final_state_grad(cache, dS)
        return [out, cache.final_state, *backward(dout, cache)]

    return run


CASES = {
    "attention": core(causal=False),
    "attention mask": core(mask=holey_mask(0), causal=False),
    "attention causal N>M bottom_right": core(causal=True, align="bottom_right"),
    "attention causal N<M": core(n=5, m=7, causal=True),
    "attention causal and mask": core(mask=holey_mask(0), causal=True),
    "attention dropout": core(causal=False, dropout_p=0.3),
    "attention shared keys": with_grads(
        attention_forward, attention_backward, inputs(0, k_heads=1), causal=True
    ),
    "attention 2-d": with_grads(
        attention_forward,
        attention_backward,
        [a[0, 0] for a in inputs(0)],
        causal=False,
    ),
    "attention_weights": weights(mask=holey_mask(1), causal=True),
    "attention_weights bottom_right": weights(causal=True, align="bottom_right"),
    "flash": flash(mask=holey_mask(1), causal=False),
    "flash causal N<M bottom_right": flash(n=5, m=7, causal=True, align="bottom_right"),
    "flash causal N>M": flash(causal=True),
    "block_attention_forward": with_grads(
        block_attention_forward,
        block_attention_backward,
        inputs(5, n=6, m=8),
        causal=True,
        q_positions=np.r_[0:3, 5:8],
        k_positions=np.arange(8),
        block_q=2,
        block_k=3,
    ),
    "block_attention_cache": block_from_global,
    "sliding window causal": sliding(window=3, causal=True, mask=causal_mask(11)),
    "sliding window": sliding(window=4, causal=False),
    "linear": linear(causal=False),
    "linear parallel causal N>M": linear(causal=True, align="bottom_right"),
    "linear recurrent": linear(n=5, m=5, causal=True, form="recurrent"),
    "linear chunkwise": linear(n=6, m=6, causal=True, form="chunkwise", chunk_size=2),
    "linear chunkwise N<M": linear(
        n=5, m=7, causal=True, form="chunkwise", chunk_size=2
    ),
    "linear favor+": linear(causal=False, feature_map="favor+"),
}
CASES.update(
    {
        f"{model} {form}": recurrence(model, form)
        for model in RECURRENCES
        for form in ("recurrent", "parallel", "chunkwise")
    }
)
CASES["gated_deltanet chunkwise 2-d"] = recurrence("gated_deltanet", "chunkwise", ())
CASES["gla parallel 3 leading axes"] = recurrence("gla", "parallel", (2, 2, 3))
COVERED = {
    "attention_forward": "attention",
    "attention_weights": "attention_weights",
    "flash_attention_forward": "flash",
    "block_attention_forward": "block_attention_forward",
    "block_attention_cache": "block_attention_cache",
    "sliding_window_attention_forward": "sliding window",
    "linear_attention_forward": "linear",
    **{f"{model}_forward": f"{model} chunkwise" for model in RECURRENCES},
}


@pytest.mark.parametrize("min_task", [1, 60, threads.MIN_TASK_SIZE])
@pytest.mark.parametrize("name", list(CASES))
def test_results_are_bitwise_independent_of_workers(name, min_task, monkeypatch):
    monkeypatch.setattr(threads, "MIN_TASK_SIZE", min_task)
    monkeypatch.setattr(attention_module, "_BLOCK_BYTES", 80)  # a few rows per block
    results = [CASES[name](workers) for workers in WORKERS]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


RECURRENCE_CASES = [name for name in CASES if name.split()[0] in RECURRENCES]


@pytest.mark.parametrize("name", RECURRENCE_CASES)
def test_recurrence_slices_put_together_equal_one_call(name, monkeypatch):
    # one task per (batch, head) slice vs one task for all: the same to rounding
    whole = CASES[name](2)
    monkeypatch.setattr(threads, "MIN_TASK_SIZE", 1)
    for a, b in zip(whole, CASES[name](2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_every_function_with_workers_is_covered():
    for qual, fn in public_functions().items():
        params = inspect.signature(fn).parameters
        if "workers" in params:
            name = qual.rsplit(".", 1)[-1]
            assert name in COVERED, f"{qual} takes workers= but has no case here"
            assert COVERED[name] in CASES
            p = params["workers"]
            assert p.kind is p.KEYWORD_ONLY and p.default is None, qual


def test_the_cache_remembers_the_workers_for_the_backward():
    q, k, v = inputs(0)
    _, cache = attention_forward(q, k, v, causal=False, workers=3)
    assert cache.workers == 3
    _, cache = linear_attention_forward(q, k, v, causal=False, workers=2)
    assert cache.workers == 2
    _, cache = linear_attn_forward(q[..., :M, :], k, v, workers=2)
    assert cache.workers == 2


def test_one_big_slice_lets_blas_use_the_threads_within_1e12():
    # a single task: BLAS gets the ``workers`` threads and may split a product
    # differently for another number of them; only the last bits may differ
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((384, 65)) for _ in range(3))
    dout = rng.standard_normal((384, 65))
    results = []
    for workers in WORKERS:
        out, cache = attention_forward(q, k, v, causal=True, workers=workers)
        results.append([out, *attention_backward(dout, cache)])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


FLOAT32_CASES = {
    "attention": (attention_forward, attention_backward, {"causal": True}),
    "flash": (flash_attention_forward, flash_attention_backward, {"causal": True}),
    "sliding window": (
        sliding_window_attention_forward,
        sliding_window_attention_backward,
        {"window": 3, "causal": True},
    ),
    "linear chunkwise": (
        linear_attention_forward,
        linear_attention_backward,
        {"causal": True, "form": "chunkwise", "chunk_size": 2},
    ),
    "linear_attn recurrence": (
        linear_attn_forward,
        linear_attn_backward,
        {"form": "chunkwise", "chunk_size": 2},
    ),
}


@pytest.mark.parametrize("name", list(FLOAT32_CASES))
def test_float32_stays_float32_end_to_end(name):
    forward, backward, options = FLOAT32_CASES[name]
    q, k, v = inputs(10, n=6, m=6, dtype=np.float32)
    out, cache = forward(q, k, v, workers=2, **options)
    dout = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    arrays = [out, *backward(dout, cache)]
    arrays += [a for a in cache if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}, name
