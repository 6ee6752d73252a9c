"""Checkers for exercise 20a: the gated delta rule, one token and one chunk.

Student signatures (row vectors; S is (d_k, d_v); no scale on q):

    gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)
        S' = alpha S,   u = beta (v - k S'),   S_new = S' + k^T u,   o = q S_new

    gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)
        C tokens at once: Q, K (C, d_k), V (C, d_v), log_alpha, beta (C,); the
        chunkwise (UT transform) form of the same recurrence, any correct method.

The answers are computed here from first principles (the chunk's by running the
step token by token), never by the package's recurrences, which a solution may not
call (``answer_key.RECURRENCES``).
"""

import numpy as np

from . import answer_key
from .framework import Case, Checker, grade
from .hints import Hint, kind, matches, matches_any

STEP_OUTPUTS = ("o", "S_new")
CHUNK_OUTPUTS = ("O", "S_next")


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _step_reference(S, q, k, v, alpha, beta):
    """(o, S_new) of one token: decay, delta-rule write, read."""
    Sa = alpha * S  # (d_k, d_v)
    S_new = Sa + np.outer(k, beta * (v - k @ Sa))
    return q @ S_new, S_new


def _chunk_reference(S0, Q, K, V, log_alpha, beta):
    """(O, S_next): the step, token by token."""
    S, out = S0, []
    for t in range(len(Q)):
        o, S = _step_reference(S, Q[t], K[t], V[t], np.exp(log_alpha[t]), beta[t])
        out.append(o)
    return np.array(out), S


# --- one token ----------------------------------------------------------------------


def _step_cases(rng):
    g = rng.standard_normal
    a, b = rng.uniform(0.5, 0.99, 3), rng.uniform(0.2, 0.9, 2)
    specs = [  # name, S, q, k, v, alpha, beta
        ("d_k != d_v", g((4, 3)), g(4), _unit(g(4)), g(3), a[0], b[0]),
        ("square state", g((3, 3)), g(3), _unit(g(3)), g(3), a[1], b[1]),
        ("alpha = 1, beta = 0: nothing changes", g((4, 2)), g(4), _unit(g(4)), g(2),
         1.0, 0.0),
        ("unit key, beta = 1: k reads v afterwards", g((5, 3)), g(5), _unit(g(5)),
         g(3), a[2], 1.0),
        ("a key of norm 2", g((4, 3)), g(4), 2.0 * _unit(g(4)), g(3), a[0], b[1]),
    ]  # fmt: skip
    out = []
    for name, S, q, k, v, alpha, beta in specs:
        label = f"{name}: S {S.shape}"
        args = (S, q, k, v, float(alpha), float(beta))
        out.append(Case(label, args, _step_reference(*args)))
    return out


def _step(c, *, decay_first=True, read_decayed=True, delta=True, use_beta=True,
          read_after=True):  # fmt: skip
    """(o, S_new) with one planted change (the defaults are right)."""
    S, q, k, v, a, b = c.args
    Sa = a * S
    read = Sa if read_decayed and decay_first else S  # write, then decay: reads S
    old = k @ read if delta else 0.0
    write = np.outer(k, (b if use_beta else 1.0) * (v - old))
    S_new = Sa + write if decay_first else a * (S + write)
    return (q @ S_new if read_after else q @ S), S_new


def _read_before(c):
    S, q, alpha = c.args[0], c.args[1], c.args[4]
    return [{"o": q @ S}, {"o": q @ (alpha * S)}]  # the old or the decayed state


STEP_HINTS = (
    matches(
        lambda c: _step(c, decay_first=False),
        "the state decays *before* the write: S' = alpha S, then the delta rule "
        "corrects what S' returns for k (alpha must not scale the new value).",
    ),
    matches(
        lambda c: _step(c, read_decayed=False),
        "read the old value from the decayed state: u = beta (v - k S'), S' = alpha S.",
    ),
    matches_any(
        _read_before,
        "o = q S_new: read the memory after writing the current token (causal "
        "attention includes the current position).",
    ),
    matches(
        lambda c: _step(c, delta=False),
        "the delta rule writes the correction v - k S', not v itself: without it an "
        "old value stored under k is added to, not replaced.",
    ),
    matches(
        lambda c: _step(c, use_beta=False),
        "the write strength beta is missing: u = beta (v - k S').",
    ),
    Hint(
        kind("shape"),
        "o has shape (d_v,) and S_new the shape of S, (d_k, d_v): the write k^T u "
        "is an outer product with k along the rows.",
    ),
)

GATED_DELTA_STEP = Checker(
    title="gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)",
    make_cases=_step_cases,
    outputs=STEP_OUTPUTS,
    arg_names=("S", "q", "k", "v"),
    hints=STEP_HINTS,
    forbidden=answer_key.RECURRENCES + answer_key.REFERENCE
    + (_step_reference, _chunk_reference),
    call="check_gated_delta_step(gated_delta_step)",
)  # fmt: skip


# --- one chunk ----------------------------------------------------------------------


def _chunk_cases(rng):
    g = rng.standard_normal
    specs = [  # name, C, d_k, d_v, smallest log-decay
        ("C = 4", 4, 3, 2, -1.0),
        ("C = 6, d_k = d_v", 6, 4, 4, -1.0),
        ("C = 1", 1, 3, 2, -1.0),
        ("C = 8 > d_k", 8, 3, 5, -1.0),
        ("strong decays, cumulative log-decay below -709", 8, 3, 2, -200.0),
    ]
    out = []
    for name, C, d_k, d_v, lo in specs:
        la = -rng.uniform(0.05, 1.0, C) if lo > -2 else -rng.uniform(100.0, 200.0, C)
        args = (g((d_k, d_v)), g((C, d_k)), _unit(g((C, d_k))), g((C, d_v)), la,
                rng.uniform(0.1, 1.0, C))  # fmt: skip
        label = f"{name}: Q, K ({C}, {d_k}), V ({C}, {d_v})"
        out.append(Case(label, args, _chunk_reference(*args), info={"lo": lo}))
    return out


def _chunk(c, *, causal=True, inter=True, decay_S=True, S0_in_U=True, keys=True):
    """The UT-transform chunk with one planted change (the defaults are right)."""
    S0, Q, K, V, la, beta = c.args
    B = np.cumsum(la)  # (C,) local cumulative log-decays
    diff = B[:, None] - B[None, :]
    tril = np.tril(np.ones_like(diff, dtype=bool))
    G = np.exp(np.where(tril, diff, -np.inf))  # masked before exp
    A = np.eye(len(B)) + beta[:, None] * np.tril(K @ K.T * G, -1)
    R = V - (K * np.exp(B)[:, None]) @ S0 if S0_in_U else V
    U = np.linalg.solve(A, beta[:, None] * R)  # (C, d_v)
    with np.errstate(over="ignore", invalid="ignore"):
        P = Q @ K.T * (G if causal else np.exp(diff))  # no mask: the future leaks
    O = (Q * np.exp(B)[:, None] if inter else Q) @ S0 + P @ U
    S_next = (np.exp(B[-1]) if decay_S else 1.0) * S0
    Kd = K * np.exp(B[-1] - B)[:, None] if keys else K
    return O, S_next + Kd.T @ U


CHUNK_HINTS = (
    Hint(
        lambda f: f.kind == "nonfinite" and f.case.info.get("lo", 0) < -100,
        "a decay overflowed: exp(B_i - B_j) above the diagonal (j > i) is a growth "
        "factor, and e^B_i * e^-B_j overflows once B passes -709. Compute the "
        "differences B_i - B_j and mask them before exp "
        "(np.where(tril, diff, -np.inf)).",
    ),
    matches(
        lambda c: _chunk(c, causal=False),
        "token i may read tokens j <= i only: Gamma_ij = exp(B_i - B_j) for j <= i "
        "and 0 above the diagonal.",
    ),
    matches(
        lambda c: _chunk(c, inter=False),
        "the incoming state S0 has decayed by exp(B_t) when token t reads it: "
        "O = (Q o e^B) S0 + ..., not Q S0.",
    ),
    matches(
        lambda c: _chunk(c, decay_S=False),
        "the state leaving the chunk is exp(B_C) S0 + ...: the whole chunk's decay "
        "applies to what came in.",
    ),
    matches(
        lambda c: _chunk(c, S0_in_U=False),
        "each token corrects what the whole memory returns for its key, including "
        "the incoming state: U solves A U = diag(beta) (V - (K o e^B) S0).",
    ),
    matches(
        lambda c: _chunk(c, keys=False),
        "a token's write decays until the end of the chunk: S_next adds "
        "(K o e^(B_C - B))^T U, not K^T U.",
    ),
)

GATED_DELTA_CHUNK = Checker(
    title="gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)",
    make_cases=_chunk_cases,
    outputs=CHUNK_OUTPUTS,
    arg_names=("S0", "Q", "K", "V", "log_alpha", "beta"),
    hints=CHUNK_HINTS,
    forbidden=answer_key.RECURRENCES + answer_key.REFERENCE
    + (_step_reference, _chunk_reference),
    call="check_gated_delta_chunk(gated_delta_chunk)",
)  # fmt: skip


def check_gated_delta_step(fn, *, seed=None):
    """Check a student's ``gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)``.

    S (d_k, d_v), q, k (d_k,), v (d_v,), alpha, beta numbers; S' = alpha S,
    S_new = S' + k^T beta (v - k S'), o = q S_new. Raises AssertionError unless
    every case passes.
    """
    __tracebackhide__ = True
    grade(GATED_DELTA_STEP, fn, seed=seed)


def check_gated_delta_chunk(fn, *, seed=None):
    """Check ``gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)``.

    One chunk of C tokens of the gated delta rule from the state S0 (d_k, d_v);
    compared with the step run token by token. Raises AssertionError unless every
    case passes.
    """
    __tracebackhide__ = True
    grade(GATED_DELTA_CHUNK, fn, seed=seed)
