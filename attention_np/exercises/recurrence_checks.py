"""Checkers for exercise 19a: the gated delta rule, one step and one chunk.

Student signatures (row vectors; S is (d_k, d_v); no scale on q):

    gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)
        S' = alpha S,   u = beta (v - k S'),   S_new = S' + k^T u,   o = q S_new

    gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)
        C tokens at once: Q, K (C, d_k), V (C, d_v), log_alpha, beta (C,); the
        chunkwise (UT transform) form of the same recurrence, any correct method.

The answers come from ``attention_np.recurrences.gated_deltanet_forward`` (recurrent
form, scale 1). Plain functions, independent of the exercise framework: a check
prints one line per case and raises ``AssertionError`` naming the first failing
case. A hint is printed only when the wrong answer equals the answer of one known
mistake (each mistake is planted by recomputing the answer with it); otherwise the
message names the case and the largest difference.
"""

import numpy as np

from ..recurrences import gated_deltanet_forward


def _reference(S0, Q, K, V, log_alpha, beta):
    """(O, S_next) of the recurrence, token by token."""
    out, cache = gated_deltanet_forward(
        Q, K, V, log_alpha, beta, S0, form="recurrent", scale=1.0
    )
    return out, cache.final_state


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def step_cases(rng):
    """[(name, (S, q, k, v, alpha, beta))] for gated_delta_step."""
    g = rng.standard_normal
    return [
        ("d_k != d_v", (g((4, 3)), g(4), _unit(g(4)), g(3), 0.8, 0.6)),
        ("square state", (g((3, 3)), g(3), _unit(g(3)), g(3), 0.95, 0.3)),
        (
            "alpha = 1, beta = 0: nothing changes",
            (g((4, 2)), g(4), _unit(g(4)), g(2), 1.0, 0.0),
        ),  # fmt: skip
        (
            "unit key, beta = 1: k reads v afterwards",
            (g((5, 3)), g(5), _unit(g(5)), g(3), 0.5, 1.0),
        ),  # fmt: skip
        (
            "a key that is not a unit vector",
            (g((4, 3)), g(4), 2.0 * _unit(g(4)), g(3), 0.9, 0.4),
        ),  # fmt: skip
    ]


def _step_answer(S, q, k, v, alpha, beta):
    out, S_new = _reference(S, q[None], k[None], v[None], np.log([alpha]), [beta])
    return out[0], S_new


STEP_MISTAKES = (  # (name, wrong answer, hint)
    (
        "decay after the write",
        lambda S, q, k, v, a, b: _read(q, a * (S + b * np.outer(k, v - k @ S))),
        "the state decays *before* the write: S' = alpha S, then the delta rule "
        "corrects what S' returns for k (alpha must not scale the new value).",
    ),
    (
        "correction read from the undecayed state",
        lambda S, q, k, v, a, b: _read(q, a * S + b * np.outer(k, v - k @ S)),
        "read the old value from the decayed state: u = beta (v - k S'), S' = alpha S.",
    ),
    (
        "output read before the write",
        lambda S, q, k, v, a, b: (q @ S, _step_answer(S, q, k, v, a, b)[1]),
        "o = q S_new: read the memory after writing the current token (causal "
        "attention includes the current position).",
    ),
    (
        "sum rule instead of the delta rule",
        lambda S, q, k, v, a, b: _read(q, a * S + b * np.outer(k, v)),
        "the delta rule writes the correction v - k S', not v itself: without it an "
        "old value stored under k is added to, not replaced.",
    ),
)


def _read(q, S_new):
    return q @ S_new, S_new


def chunk_cases(rng):
    """[(name, (S0, Q, K, V, log_alpha, beta))] for gated_delta_chunk."""
    g = rng.standard_normal
    out = []
    sizes = (("C = 4", 4, 3, 2), ("C = 6, d_k = d_v", 6, 4, 4), ("C = 1", 1, 3, 2),
             ("C = 8 > d_k", 8, 3, 5))  # fmt: skip
    for name, C, d_k, d_v in sizes:
        gates = (-rng.uniform(0.05, 1.0, C), rng.uniform(0.1, 1.0, C))
        out.append((name, (g((d_k, d_v)), g((C, d_k)), _unit(g((C, d_k))),
                           g((C, d_v)), *gates)))  # fmt: skip
    return out


def _chunk(S0, Q, K, V, la, beta, *, causal=True, inter=True, decay_S=True):
    """The UT-transform chunk with one planted change (the defaults are right)."""
    B = np.cumsum(la)  # (C,) local cumulative log-decays
    diff = B[:, None] - B[None, :]
    tril = np.tril(np.ones_like(diff, dtype=bool))
    G = np.exp(np.where(tril, diff, -np.inf))  # masked before exp
    A = np.eye(len(B)) + beta[:, None] * np.tril(K @ K.T * G, -1)
    U = np.linalg.solve(A, beta[:, None] * (V - (K * np.exp(B)[:, None]) @ S0))
    with np.errstate(over="ignore", invalid="ignore"):
        P = Q @ K.T * (G if causal else np.exp(diff))  # no mask: the future leaks
    O = (Q * np.exp(B)[:, None] if inter else Q) @ S0 + P @ U
    S_next = (np.exp(B[-1]) if decay_S else 1.0) * S0
    return O, S_next + (K * np.exp(B[-1] - B)[:, None]).T @ U


CHUNK_MISTAKES = (
    (
        "scores not causally masked",
        lambda *a: _chunk(*a, causal=False),
        "token i may read tokens j <= i only: Gamma_ij = exp(B_i - B_j) for j <= i "
        "and 0 above the diagonal. Mask *before* exp (np.where(tril, diff, -np.inf)):"
        " above the diagonal the difference is a growth factor that overflows.",
    ),
    (
        "initial state not decayed for the outputs",
        lambda *a: _chunk(*a, inter=False),
        "the incoming state S0 has decayed by exp(B_t) when token t reads it: "
        "O = (Q o e^B) S0 + ..., not Q S0.",
    ),
    (
        "initial state not decayed in S_next",
        lambda *a: _chunk(*a, decay_S=False),
        "the state leaving the chunk is exp(B_C) S0 + ...: the whole chunk's decay "
        "applies to what came in.",
    ),
)


def _diagnose(got, args, mistakes):
    for name, wrong, hint in mistakes:
        try:
            expected = wrong(*args)
        except (ValueError, FloatingPointError):
            continue
        if all(np.shape(g) == np.shape(e) and np.allclose(g, e, atol=1e-8)
               for g, e in zip(got, expected, strict=True)):  # fmt: skip
            return f"{name}: {hint}"
    return None


def _run(title, fn, cases, answer, mistakes):
    print(title)
    for name, args in cases:
        copies = [np.array(a, dtype=float) for a in args]
        try:
            got = tuple(fn(*copies))
        except NotImplementedError as exc:
            print("  … not implemented yet: replace `raise NotImplementedError()` "
                  "with your code")  # fmt: skip
            raise AssertionError(f"{title}: not implemented yet") from exc
        except Exception as exc:  # the student's error, reported with the case
            print(f"  ✗ {name}: raised {type(exc).__name__}: {exc}")
            raise AssertionError(f"{title}: case '{name}' raised {exc!r}") from exc
        problem = _compare(got, answer(*args), args, copies)
        if problem:
            hint = _diagnose(got, args, mistakes) if "differs" in problem else None
            print(f"  ✗ {name}: {problem}" + (f"\n    Hint: {hint}" if hint else ""))
            raise AssertionError(f"{title}: case '{name}': {problem}")
        print(f"  ✓ {name}")
    print(f"✓ {len(cases)}/{len(cases)} cases pass.")
    return True


def _compare(got, expected, args, copies):
    if len(got) != len(expected):
        return f"returned {len(got)} values, expected {len(expected)} (out, state)"
    if any(not np.array_equal(a, c) for a, c in zip(args, copies, strict=True)):
        return "an input array was modified in place"
    for label, g, e in zip(("output", "state"), got, expected, strict=True):
        if np.shape(g) != np.shape(e):
            return f"{label} has shape {np.shape(g)}, expected {np.shape(e)}"
        if not np.allclose(g, e, atol=1e-8, rtol=1e-6):
            err = float(np.max(np.abs(np.asarray(g) - e)))
            return f"{label} differs from the answer by up to {err:.3g}"
    return None


def check_gated_delta_step(fn, *, seed=0):
    """Check ``gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)``."""
    cases = step_cases(np.random.default_rng(seed))
    title = "gated_delta_step(S, q, k, v, alpha, beta) -> (o, S_new)"
    return _run(title, fn, cases, _step_answer, STEP_MISTAKES)


def check_gated_delta_chunk(fn, *, seed=0):
    """Check ``gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)``."""
    cases = chunk_cases(np.random.default_rng(seed))
    title = "gated_delta_chunk(S0, Q, K, V, log_alpha, beta) -> (O, S_next)"
    return _run(title, fn, cases, _reference, CHUNK_MISTAKES)
