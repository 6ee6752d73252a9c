"""Checker for exercise 05: the backward pass of scaled dot-product attention.

Student signature:
    attention_backward(dout, q, k, v, P) -> (dq, dk, dv)
        dout (..., N, d_v) upstream gradient; q (..., N, d), k (..., M, d),
        v (..., M, d_v) the forward's inputs; P (..., N, M) its weights
        softmax(q k^T / sqrt(d), masked) (0 where masked). Returns gradients with the
        shapes of q, k and v.
"""

import numpy as np

from ..attention import attention_backward, attention_forward
from ..gradcheck import numerical_grads
from ..masks import causal_mask
from .framework import Case, Checker
from .hints import matches, nonfinite_in_rows, shape_swaps_axes, when

OUTPUTS = ("dq", "dk", "dv")


def _case(name, rng, q, k, v, mask=None):
    out, cache = attention_forward(q, k, v, mask)
    dout = rng.standard_normal(out.shape)  # random, never ones
    expected = attention_backward(dout, cache)
    forward = lambda p: attention_forward(p["q"], p["k"], p["v"], mask)[0]
    fd = numerical_grads(forward, {"q": q, "k": k, "v": v}, dout)
    P = cache.weights
    info = {"N": q.shape[-2], "M": k.shape[-2], "scale": cache.scale}
    info["empty_rows"] = ~np.any(P > 0, axis=-1)  # (..., N)
    shapes = f"q {q.shape}, k {k.shape}, v {v.shape}"
    return Case(
        f"{name}: {shapes}",
        (dout, q, k, v, P),
        expected,
        info,
        fd=tuple(fd[n] for n in "qkv"),
    )


def _backward_cases(rng):
    g = rng.standard_normal
    mask = causal_mask(4, 5, align="bottom_right") & (rng.random((2, 4, 5)) > 0.3)
    mask[1, 0] = False  # query 0 of batch 1 may attend to nothing
    return [
        _case("square, N = M = d = d_v", rng, g((4, 4)), g((4, 4)), g((4, 4))),
        _case("one head, N != M", rng, g((3, 4)), g((5, 4)), g((5, 2))),
        _case(
            "batch and heads", rng, g((2, 2, 3, 4)), g((2, 2, 5, 4)), g((2, 2, 5, 6))
        ),
        _case(
            "masked, with a fully masked row",
            rng,
            g((2, 4, 3)),
            g((2, 5, 3)),
            g((2, 5, 2)),
            mask,
        ),
    ]


def _parts(c):
    """Reference intermediate gradients: dP and dS for a case."""
    dout, q, k, v, P = c.args
    dP = dout @ np.swapaxes(v, -1, -2)  # (..., N, M)
    dS = P * (dP - np.sum(dP * P, axis=-1, keepdims=True))  # (..., N, M)
    return dP, dS


def _dq_dk(c, dS, scale=None):
    _, q, k, _, _ = c.args
    scale = c.info["scale"] if scale is None else scale
    return {"dq": scale * dS @ k, "dk": scale * np.swapaxes(dS, -1, -2) @ q}


def _t(x):
    return np.swapaxes(x, -1, -2)


BACKWARD_HINTS = (
    when(
        nonfinite_in_rows("empty_rows"),
        "a fully masked row has P = 0: its gradients are 0. Never divide by P or "
        "take log(P); dS = P * (dP - rowsum(dP * P)) needs neither.",
    ),
    when(
        shape_swaps_axes,
        "a transpose is missing: each gradient has its input's shape. "
        "dq = scale dS k (N, d), dk = scale dS^T q (M, d), dv = P^T dout (M, d_v).",
    ),
    matches(
        lambda c: {"dv": c.args[4] @ c.args[0]},
        "forward: out = P v, so dv = P^T dout (transpose P), not P dout.",
    ),
    matches(
        lambda c: {"dk": c.info["scale"] * _parts(c)[1] @ c.args[1]},
        "forward: S = scale q k^T, so dk = scale dS^T q (transpose dS).",
    ),
    matches(
        lambda c: {"dq": c.info["scale"] * _t(_parts(c)[1]) @ c.args[2]},
        "forward: S = scale q k^T, so dq = scale dS k (no transpose on dS).",
    ),
    matches(
        lambda c: _dq_dk(c, _parts(c)[1], scale=1.0),
        "the scale is missing: S = scale q k^T with scale = 1/sqrt(d), so dq and dk "
        "both carry the factor scale.",
    ),
    matches(
        lambda c: _dq_dk(c, c.args[4] * _parts(c)[0]),
        "the softmax backward lost its row term: "
        "dS = P * (dP - sum(dP * P, axis=-1, keepdims=True)), not P * dP.",
    ),
    matches(
        lambda c: _dq_dk(
            c,
            c.args[4]
            * (_parts(c)[0] - np.sum(_parts(c)[0] * c.args[4], axis=-2, keepdims=True)),
        ),
        "the softmax row sum runs over the wrong axis: sum(dP * P) over the keys, "
        "axis=-1.",
    ),
    matches(
        lambda c: _dq_dk(
            c,
            c.args[4]
            * (
                c.args[0] @ c.args[3]
                - np.sum(c.args[4] * (c.args[0] @ c.args[3]), axis=-1, keepdims=True)
            ),
        ),
        "forward: out = P v, so dP = dout v^T (transpose v).",
    ),
)

ATTENTION_BACKWARD = Checker(
    title="attention_backward(dout, q, k, v, P) -> (dq, dk, dv)",
    make_cases=_backward_cases,
    outputs=OUTPUTS,
    arg_names=("dout", "q", "k", "v", "P"),
    hints=BACKWARD_HINTS,
    fallback="dv = P^T dout; dP = dout v^T; dS = P * (dP - rowsum(dP * P)); "
    "dq = scale dS k; dk = scale dS^T q.",
)


def check_attention_backward(fn):
    """Check a student's ``attention_backward(dout, q, k, v, P) -> (dq, dk, dv)``.

    dout (..., N, d_v); q (..., N, d), k (..., M, d), v (..., M, d_v); P (..., N, M)
    the forward's weights (0 where masked); scale = 1/sqrt(d). Each gradient is
    compared with the reference backward and with central finite differences.
    Returns True when every case passes.
    """
    return ATTENTION_BACKWARD.run(fn)
