"""The exercise checkers: correct code passes, each planted mistake gets its hint.

The catalogue below plants one classic mistake per entry in an otherwise correct
implementation and asserts that the right checker fails it and that the FIRST hint it
prints names that mistake.
"""

import numpy as np
import pytest

import attention_np as an
from attention_np import exercises as ex
from attention_np.gradcheck import numerical_grad

T = lambda a: np.swapaxes(a, -1, -2)


@pytest.fixture(autouse=True)
def _report_mode(monkeypatch):
    """Checkers print and return False here, even if the caller exported strict mode."""
    monkeypatch.delenv("ATTENTION_NP_STRICT", raising=False)


def softmax(x, *, axis=-1, shift="row", safe=True, keepdims=True, inplace=False):
    if inplace:
        x -= 0.0 * x + 1.0  # "x -= ..." edits the caller's array
    if shift == "row":
        m = np.max(x, axis=axis, keepdims=keepdims)
        m = np.where(np.isfinite(m), m, 0.0) if safe else m
    else:
        m = np.max(x[np.isfinite(x)]) if shift == "global" else 0.0
    e = np.exp(x - m)
    s = np.sum(e, axis=axis, keepdims=keepdims)
    return e / (np.where(s == 0, 1.0, s) if safe else s)


def attention(
    q,
    k,
    v,
    mask=None,
    *,
    scale=None,
    fill=-np.inf,
    add=False,
    after=False,
    invert=False,
    k_t=T,
    **soft,
):
    s = 1 / np.sqrt(q.shape[-1]) if scale is None else scale(q.shape[-1])
    S = s * q @ k_t(k)
    if mask is not None and not after:
        allow = ~mask if invert else mask
        S = S + np.where(allow, 0.0, fill) if add else np.where(allow, S, fill)
    P = softmax(S, **soft)
    return (P * mask if after and mask is not None else P) @ v


def attention_backward(dout, q, k, v, P, *, bug=None):
    s = 1.0 if bug == "scale" else 1 / np.sqrt(q.shape[-1])
    dv = P @ dout if bug == "dv" else T(P) @ dout
    dP = dout @ v if bug == "dP" else dout @ T(v)
    row = 0.0 if bug == "row" else np.sum(dP * P, axis=-1, keepdims=True)
    dS = P * (dP - row)
    dq = s * T(dS) @ k if bug == "dq" else s * dS @ k
    dk = s * dS @ q if bug == "dk" else s * T(dS) @ q
    return dq, dk, dv


def mha_forward(
    x,
    p,
    H,
    mask=None,
    *,
    split=an.split_heads,
    merge=an.merge_heads,
    proj=True,
    bias=True,
    w_t=False,
    scale=None,
):
    W = lambda n: p[n].T if w_t else p[n]
    b = lambda n: p[n] if bias else 0.0
    heads = [split(x @ W(f"W_{n}") + b(f"b_{n}"), H) for n in "qkv"]
    sc = scale(x.shape[-1]) if scale else None
    o = merge(an.attention_forward(*heads, mask, scale=sc)[0])
    return o @ W("W_o") + b("b_o") if proj else o


def mha_backward(dout, x, p, H, mask=None, *, bug=None):
    dx_q, dx_kv, grads = an.mha_backward(dout, an.mha_forward(x, x, p, H, mask)[1])
    if bug == "W^T":
        grads = {n: g.T if n.startswith("W") else g for n, g in grads.items()}
    if bug == "db":
        grads = {
            n: np.stack([g, g]) if n.startswith("b") else g for n, g in grads.items()
        }
    return (dx_q if bug == "dx_q" else dx_q + dx_kv), grads


def numgrad(f, x, dout, h=1e-6, *, bug=None):
    grad, d = np.zeros_like(x), (np.ones_like(dout) if bug == "ones" else dout)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * d)
        x[i] = old if bug == "one-sided" else old - h
        minus = np.sum(f(x) * d)
        x[i] = old if bug != "no restore" else x[i]
        grad[i] = (plus - minus) / (h if bug in ("h", "one-sided") else 2 * h)
    return grad


def grad_check(forward, backward, x, rng, *, bug=None):
    out, cache = forward(x)
    # the planted "ones" bug: an all-ones upstream gradient, which hides softmax bugs
    dout = rng.standard_normal(out.shape)
    if bug == "ones":
        dout = np.full(out.shape, 1.0)
    a, n = backward(dout, cache), numerical_grad(lambda x: forward(x)[0], x, dout)
    if bug == "relative":
        return bool(np.max(np.abs(a - n) / (np.abs(a) + np.abs(n) + 1e-300)) < 1e-5)
    diff = float(np.max(np.abs(a - n)))
    if bug == "float":
        return diff
    return bool(diff <= (1.0 if bug == "loose" else 1e-7 + 1e-6 * np.max(np.abs(n))))


def score_change(q, k, b, scale):
    return scale * (q @ T(k + b)) - scale * (q @ T(k))


ANSWERS = {
    "rows_constant": True,
    "db_k_max": 1e-17,
    "db_v_max": 1.0,
    "zero_gradient": {"b_k"},
    "with_mask": True,
}

split_ref, merge_ref = an.split_heads, an.merge_heads
no_t_split = lambda x, H: x.reshape(x.shape[0], H, x.shape[1], -1)
no_t_merge = lambda x: x.reshape(x.shape[0], x.shape[2], -1)


# --- exercises 11-16: reference solutions with a `bug` switch ------------------------


def rope(x, positions=None, base=10000.0, *, bug=None):
    N, d = x.shape[-2:]
    pos = np.arange(N) + (bug == "from 1") if positions is None else positions
    pos = np.arange(N) if bug == "ignore positions" else np.asarray(pos)
    theta = base ** (-np.arange(0, d, 2) / (2 * d if bug == "-i/d" else d))
    angle = pos[..., None] * theta  # (..., N, d/2)
    cos, sin = np.cos(angle), np.sin(angle) * (-1 if bug == "direction" else 1)
    half = bug == "rotate half"
    lo, hi = (
        (slice(0, d // 2), slice(d // 2, d))
        if half
        else (slice(0, d, 2), slice(1, d, 2))
    )
    a, b, out = x[..., lo], x[..., hi], np.empty_like(x)
    out[..., lo] = a * cos + b * sin if bug == "no minus" else a * cos - b * sin
    first = out[..., lo] if bug == "overwrite" else a
    out[..., hi] = first * sin + b * cos
    return out


def layernorm_backward(dout, x, gamma, eps=1e-5, *, bug=None):
    D = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    var = np.sum(xc * xc, axis=-1, keepdims=True) / (D - 1 if bug == "ddof" else D)
    inv = 1 / (np.sqrt(var) + eps) if bug == "eps" else 1 / np.sqrt(var + eps)
    xhat, g = xc * inv, dout * gamma
    mean_g = 0.0 if bug in ("constants", "no mean") else g.mean(-1, keepdims=True)
    mean_gx = (
        0.0 if bug in ("constants", "no var") else (g * xhat).mean(-1, keepdims=True)
    )
    dx = inv * (g - mean_g - xhat * mean_gx)
    rows = (lambda a: a) if bug == "not summed" else (lambda a: a.reshape(-1, D).sum(0))
    rows = (lambda a: a.sum(axis=0)) if bug == "axis 0" else rows
    return dx, rows(dout * xhat), rows(dout)


def _online(x, v, block, bug):
    """The streaming recurrence: (m, l, acc) after reading every block."""
    m = np.full(x.shape[:-1], 0.0 if bug == "m0 = 0" else -np.inf)
    l, acc = np.zeros(x.shape[:-1]), np.zeros(x.shape[:-1] + v.shape[-1:])
    for start in range(0, x.shape[-1], block):
        xb, vb = x[..., start : start + block], v[..., start : start + block, :]
        m_new = np.maximum(m, xb.max(axis=-1))
        shift = m_new if bug == "no guard" else np.where(np.isneginf(m_new), 0, m_new)
        c = np.exp(shift - m) if bug == "factor" else np.exp(m - shift)
        p = np.exp(xb - shift[..., None])
        l = (l if bug == "no rescale" else l * c) + p.sum(axis=-1)
        acc = (acc if bug in ("acc", "no rescale") else acc * c[..., None]) + p @ vb
        m = m_new
    return m, l, acc


def online_softmax(x, block, *, bug=None):
    m, l, _ = _online(x, np.zeros(x.shape[-1:] + (1,)), block, bug)
    lse = m + np.log(l)
    shift = lse if bug == "empty row" else np.where(np.isneginf(lse), np.inf, lse)
    return np.exp(x - shift[..., None]), (np.log(l) if bug == "log l" else lse)


def online_attention(s, v, block, *, bug=None):
    _, l, acc = _online(s, v, block, bug)
    if bug == "no division":
        return acc
    return acc / (l if bug == "empty row" else np.where(l == 0, 1.0, l))[..., None]


def elu_plus_one(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _read(phi_q, S, z, eps):
    """(numerator, denominator) of one output row: phi_q S and phi_q . z + eps."""
    num = (phi_q[..., None, :] @ S)[..., 0, :]
    return num, np.sum(phi_q * z, axis=-1, keepdims=True) + eps


def linear_attention_rnn(q, k, v, eps=1e-6, *, bug=None):
    maps = {"elu": lambda x: elu_plus_one(x) - 1, "raw": lambda x: x}
    pq, pk = (maps.get(bug, elu_plus_one)(a) for a in (q, k))
    S = np.zeros(q.shape[:-2] + (q.shape[-1], v.shape[-1]))  # (..., d, d_v)
    z, out = np.zeros(q.shape[:-2] + q.shape[-1:]), np.zeros(v.shape)
    for i in range(q.shape[-2]):
        if bug == "read first":
            num, den = _read(pq[..., i, :], S, z, eps)
        outer = pk[..., i, :, None] * v[..., i, None, :]
        S = S + (np.swapaxes(outer, -1, -2) if bug == "transposed" else outer)
        z = z + pk[..., i, :]
        if bug != "read first":
            num, den = _read(pq[..., i, :], S, z, eps)
        out[..., i, :] = num if bug == "no normaliser" else num / den
    if bug == "after the loop":  # every row reads the final state
        num, den = _read(pq, S[..., None, :, :], z[..., None, :], eps)
        out = num / den
    return out


def fast_weight_update(A, h, lam, eta, *, bug=None):
    hh = h[:, :, None] * h[:, None, :]
    if bug == "inner product":
        hh = np.sum(h * h, axis=-1)[:, None, None]
    if bug == "np.outer":
        hh = np.outer(h, h)
    if bug == "no decay":
        return A + eta * hh
    if bug == "decay on new":
        return lam * (A + eta * hh)
    return lam * A + eta * hh


def delta_rule_update(S, k, v, beta, *, bug=None):
    b = np.asarray(beta)[..., None, None]
    stored = (
        (S @ k[..., :, None])[..., 0]
        if bug == "S k"
        else (k[..., None, :] @ S)[..., 0, :]
    )
    err = v if bug == "sum rule" else v - stored
    err = -err if bug == "sign" else err
    if bug == "transposed":
        return S + b * err[..., :, None] * k[..., None, :]
    return S + b * k[..., :, None] * err[..., None, :]


def _ttt_G(x_k, x_v, W, b, ln=None, bug=None):
    target = x_v if bug == "target x_v" else x_v - x_k
    Z = x_k @ W + b
    if ln is None:
        return Z - target
    gamma, beta, eps = ln
    xc = Z - Z.mean(-1, keepdims=True)
    inv = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    xhat = xc * inv
    r = gamma * xhat + beta - target
    if bug == "no LN backward":
        return r
    g = gamma * r
    return inv * (
        g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)
    )


def _ttt_dW_db(x_k, G, bug):
    if bug == "per token":
        return x_k[:, :, None] * G[:, None, :], G
    dW, db = x_k.T @ G, G.sum(axis=0)
    if bug == "mean":
        return dW / len(G), db / len(G)
    return (dW.T, db) if bug == "transposed" else (dW, db)


def ttt_grad(x_k, x_v, W, b, *, bug=None):
    G = _ttt_G(x_k, x_v, W, b, bug=bug)
    if bug == "last token":
        return np.outer(x_k[-1], G[-1]), G[-1]
    return _ttt_dW_db(x_k, -G if bug == "sign" else G, bug)


def ttt_ln_grad(x_k, x_v, W, b, gamma, beta, eps=1e-6, *, bug=None):
    return _ttt_dW_db(x_k, _ttt_G(x_k, x_v, W, b, (gamma, beta, eps), bug), bug)


# every checker as a one-argument function, with its correct reference
CHECKERS = {
    "softmax": (ex.check_softmax, softmax),
    "softmax_backward": (
        ex.check_softmax_backward,
        lambda dy, y: an.softmax_backward(dy, (y,)),
    ),
    "attention": (ex.check_attention, attention),
    "causal": (lambda f: ex.check_masks(f, an.padding_mask), an.causal_mask),
    "padding": (lambda f: ex.check_masks(an.causal_mask, f), an.padding_mask),
    "attention_backward": (ex.check_attention_backward, attention_backward),
    "split": (lambda f: ex.check_split_merge(f, merge_ref), split_ref),
    "merge": (lambda f: ex.check_split_merge(split_ref, f), merge_ref),
    "mha_forward": (ex.check_mha_forward, mha_forward),
    "mha_backward": (ex.check_mha_backward, mha_backward),
    "numerical_grad": (ex.check_numerical_grad, numgrad),
    "gradient_checker": (ex.check_gradient_checker, grad_check),
    "score_change": (lambda f: ex.check_key_bias(f, lambda: ANSWERS), score_change),
    "answers": (lambda f: ex.check_key_bias(score_change, f), lambda: ANSWERS),
    "rope": (ex.check_rope, rope),
    "layernorm_backward": (ex.check_layernorm_backward, layernorm_backward),
    "online_softmax": (ex.check_online_softmax, online_softmax),
    "online_attention": (ex.check_online_attention, online_attention),
    "linear_attention_rnn": (ex.check_linear_attention_rnn, linear_attention_rnn),
    "fast_weight_update": (ex.check_fast_weight_update, fast_weight_update),
    "delta_rule_update": (ex.check_delta_rule_update, delta_rule_update),
    "ttt_grad": (ex.check_ttt_grad, ttt_grad),
    "ttt_ln_grad": (ex.check_ttt_ln_grad, ttt_ln_grad),
}


def bug(checker, fn, hint):
    return pytest.param(checker, fn, hint)


CATALOGUE = {
    # softmax
    "softmax: no max subtraction": bug(
        "softmax", lambda x: softmax(x, shift=None, safe=False), "overflows"
    ),
    "softmax: NaN on a fully masked row": bug(
        "softmax", lambda x: softmax(x, safe=False), "every entry is -inf"
    ),
    "softmax: wrong axis": bug("softmax", lambda x: softmax(x, axis=-2), "wrong axis"),
    "softmax: max of the whole array": bug(
        "softmax", lambda x: softmax(x, shift="global"), "max of the whole array"
    ),
    "softmax: keepdims missing": bug(
        "softmax", lambda x: softmax(x, keepdims=False), "keepdims=True"
    ),
    "softmax: edits its input": bug(
        "softmax", lambda x: softmax(x, inplace=True), "work on a copy"
    ),
    "softmax: not normalised": bug(
        "softmax", lambda x: np.exp(x - np.max(x, -1, keepdims=True)), "row sum"
    ),
    "softmax: forgot return": bug("softmax", lambda x: None, "`return` line"),
    # softmax backward
    "softmax bwd: diagonal Jacobian only": bug(
        "softmax_backward", lambda dy, y: dy * y * (1 - y), "diagonal of the Jacobian"
    ),
    "softmax bwd: row sum over wrong axis": bug(
        "softmax_backward",
        lambda dy, y: y * (dy - np.sum(dy * y, -2, keepdims=True)),
        "wrong axis",
    ),
    "softmax bwd: sum(dy) instead of sum(dy*y)": bug(
        "softmax_backward",
        lambda dy, y: y * (dy - np.sum(dy, -1, keepdims=True)),
        "weight dy by y",
    ),
    # attention forward
    "attention: missing scale": bug(
        "attention", lambda *a: attention(*a, scale=lambda d: 1.0), "missing scale"
    ),
    "attention: divides by d": bug(
        "attention", lambda *a: attention(*a, scale=lambda d: 1 / d), "not d"
    ),
    "attention: softmax over queries": bug(
        "attention", lambda *a: attention(*a, axis=-2), "wrong axis"
    ),
    "attention: inverted mask": bug(
        "attention", lambda *a: attention(*a, invert=True), "inverted mask"
    ),
    "attention: mask after softmax": bug(
        "attention", lambda *a: attention(*a, after=True), "after softmax"
    ),
    "attention: masked scores set to 0": bug(
        "attention", lambda *a: attention(*a, fill=0.0), "exp(0) = 1"
    ),
    "attention: fill -1e9": bug(
        "attention", lambda *a: attention(*a, fill=-1e9), "uniform weights"
    ),
    "attention: add -1e9": bug(
        "attention",
        lambda *a: attention(*a, fill=-1e9, add=True),
        "as if it had no mask",
    ),
    "attention: no max subtraction": bug(
        "attention", lambda *a: attention(*a, shift=None), "overflows"
    ),
    "attention: NaN on a fully masked row": bug(
        "attention", lambda *a: attention(*a, safe=False), "attend to nothing"
    ),
    "attention: k.T on batched arrays": bug(
        "attention",
        lambda *a: attention(*a, k_t=lambda k: k.T),
        "`k.T` reverses ALL axes",
    ),
    "attention: `if mask:`": bug(
        "attention",
        lambda q, k, v, mask=None: attention(q, k, v, mask if mask else None),
        "is not None",
    ),
    "attention: wrong signature": bug(
        "attention", lambda q, k, v, mask, scale: None, "signature differs"
    ),
    # masks
    "causal: inverted": bug(
        "causal", lambda n, m: ~an.causal_mask(n, m), "inverted mask"
    ),
    "causal: diagonal excluded": bug(
        "causal", lambda n, m: np.tril(np.ones((n, m), bool), -1), "diagonal is missing"
    ),
    "causal: float array": bug(
        "causal", lambda n, m: np.tril(np.ones((n, m))), "boolean array"
    ),
    "causal: bottom-right": bug(
        "causal",
        lambda n, m: an.causal_mask(n, m, align="bottom_right"),
        "bottom-right",
    ),
    "padding: off by one": bug(
        "padding",
        lambda l, m: (np.arange(m) <= np.asarray(l)[:, None])[:, None, None],
        "off by one",
    ),
    "padding: shape (B, M)": bug(
        "padding", lambda l, m: an.padding_mask(l, m)[:, 0, 0], "(B, 1, 1, M)"
    ),
    "padding: inverted": bug(
        "padding", lambda l, m: ~an.padding_mask(l, m), "inverted mask"
    ),
    # attention backward
    **{
        f"attention bwd: {b}": bug(
            "attention_backward", lambda *a, b=b: attention_backward(*a, bug=b), hint
        )
        for b, hint in [
            ("dv", "dv = P^T dout"),
            ("dk", "dk = scale dS^T q"),
            ("dq", "no transpose on dS"),
            ("scale", "scale is missing"),
            ("row", "lost its row term"),
            ("dP", "dP = dout v^T"),
        ]
    },
    "attention bwd: two outputs": bug(
        "attention_backward",
        lambda *a: attention_backward(*a)[:2],
        "return exactly the values",
    ),
    # heads
    "split: no transpose": bug("split", no_t_split, "split without the transpose"),
    "split: interleaved columns": bug(
        "split",
        lambda x, H: x.reshape(*x.shape[:2], -1, H).transpose(0, 3, 1, 2),
        "contiguous",
    ),
    "merge: no transpose": bug("merge", no_t_merge, "merged without the transpose"),
    # multi-head forward
    "mha: heads split without transpose": bug(
        "mha_forward",
        lambda *a: mha_forward(*a, split=no_t_split, merge=no_t_merge),
        "heads split without the transpose",
    ),
    "mha: no output projection": bug(
        "mha_forward", lambda *a: mha_forward(*a, proj=False), "output projection"
    ),
    "mha: scale 1/sqrt(D)": bug(
        "mha_forward",
        lambda *a: mha_forward(*a, scale=lambda D: 1 / np.sqrt(D)),
        "d = D / n_heads",
    ),
    "mha: biases missing": bug(
        "mha_forward", lambda *a: mha_forward(*a, bias=False), "biases are missing"
    ),
    "mha: x @ W.T": bug(
        "mha_forward", lambda *a: mha_forward(*a, w_t=True), "no transpose"
    ),
    # multi-head backward
    "mha bwd: shared input not summed": bug(
        "mha_backward", lambda *a: mha_backward(*a, bug="dx_q"), "three paths"
    ),
    "mha bwd: dW transposed": bug(
        "mha_backward", lambda *a: mha_backward(*a, bug="W^T"), "dW is the transpose"
    ),
    "mha bwd: db not summed over batch": bug(
        "mha_backward", lambda *a: mha_backward(*a, bug="db"), "bias gradient sums"
    ),
    # numerical gradient
    "numgrad: ones as upstream gradient": bug(
        "numerical_grad",
        lambda *a: numgrad(*a, bug="ones"),
        "ones as the upstream gradient",
    ),
    "numgrad: divides by h": bug(
        "numerical_grad", lambda *a: numgrad(*a, bug="h"), "factor 2"
    ),
    "numgrad: one-sided difference": bug(
        "numerical_grad", lambda *a: numgrad(*a, bug="one-sided"), "one-sided"
    ),
    "numgrad: x not restored": bug(
        "numerical_grad", lambda *a: numgrad(*a, bug="no restore"), "restore x[i]"
    ),
    # gradient checker
    "gradcheck: ones as dout": bug(
        "gradient_checker", lambda *a: grad_check(*a, bug="ones"), "passed ones"
    ),
    "gradcheck: relative error": bug(
        "gradient_checker",
        lambda *a: grad_check(*a, bug="relative"),
        "relative error divides",
    ),
    "gradcheck: loose tolerance": bug(
        "gradient_checker",
        lambda *a: grad_check(*a, bug="loose"),
        "a wrong backward passed",
    ),
    "gradcheck: returns a float": bug(
        "gradient_checker", lambda *a: grad_check(*a, bug="float"), "return a bool"
    ),
    # key-bias question
    "key bias: change without scale": bug(
        "score_change",
        lambda q, k, b, s: score_change(q, k, b, 1.0),
        "scale is missing",
    ),
    "key bias: says b_v gets no gradient": bug(
        "answers",
        lambda: {**ANSWERS, "zero_gradient": {"b_k", "b_v"}},
        "b_v does get gradient",
    ),
    "key bias: misses b_k": bug(
        "answers",
        lambda: {**ANSWERS, "zero_gradient": set()},
        "softmax ignores a constant shift",
    ),
    # exercises 11-16: one entry per (checker, bug switch, expected hint)
    **{
        f"{name}: {b}": bug(name, lambda *a, f=fn, b=b: f(*a, bug=b), hint)
        for name, fn, b, hint in [
            ("rope", rope, "rotate half", "rotate-half layout"),
            ("rope", rope, "direction", "wrong way round"),
            ("rope", rope, "-i/d", "frequencies are wrong"),
            ("rope", rope, "from 1", "positions start at 0"),
            ("rope", rope, "overwrite", "ORIGINAL pair"),
            ("rope", rope, "no minus", "keeps the length"),
            ("rope", rope, "ignore positions", "use the `positions` argument"),
            (
                "layernorm_backward",
                layernorm_backward,
                "constants",
                "treated the mean and the standard deviation as constants",
            ),
            (
                "layernorm_backward",
                layernorm_backward,
                "no mean",
                "path through the mean is missing",
            ),
            (
                "layernorm_backward",
                layernorm_backward,
                "no var",
                "path through the variance is missing",
            ),
            (
                "layernorm_backward",
                layernorm_backward,
                "eps",
                "eps goes inside the square root",
            ),
            ("layernorm_backward", layernorm_backward, "ddof", "biased variance"),
            (
                "layernorm_backward",
                layernorm_backward,
                "not summed",
                "add up over every row",
            ),
            (
                "layernorm_backward",
                layernorm_backward,
                "axis 0",
                "add up over every row",
            ),
            (
                "online_softmax",
                online_softmax,
                "no rescale",
                "multiply it by exp(m_old - m_new)",
            ),
            ("online_softmax", online_softmax, "factor", "factor is upside down"),
            ("online_softmax", online_softmax, "no guard", "-inf - (-inf) = NaN"),
            ("online_softmax", online_softmax, "m0 = 0", "start the running max"),
            ("online_softmax", online_softmax, "empty row", "no finite score"),
            ("online_softmax", online_softmax, "log l", "lse = m + log(l)"),
            (
                "online_attention",
                online_attention,
                "acc",
                "accumulator was not rescaled",
            ),
            (
                "online_attention",
                online_attention,
                "no rescale",
                "multiply it by exp(m_old - m_new)",
            ),
            ("online_attention", online_attention, "factor", "factor is upside down"),
            ("online_attention", online_attention, "no guard", "-inf - (-inf) = NaN"),
            ("online_attention", online_attention, "no division", "out = acc / l"),
            ("online_attention", online_attention, "empty row", "0 / 0 = NaN"),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "read first",
                "BEFORE position i was written",
            ),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "no normaliser",
                "normaliser is missing",
            ),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "elu",
                "elu(x) + 1, not elu(x)",
            ),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "raw",
                "apply the feature map",
            ),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "transposed",
                "outer product is transposed",
            ),
            (
                "linear_attention_rnn",
                linear_attention_rnn,
                "after the loop",
                "non-causal",
            ),
            (
                "fast_weight_update",
                fast_weight_update,
                "no decay",
                "old memory must decay",
            ),
            (
                "fast_weight_update",
                fast_weight_update,
                "decay on new",
                "lam multiplies the OLD memory only",
            ),
            (
                "fast_weight_update",
                fast_weight_update,
                "inner product",
                "not the number h . h",
            ),
            (
                "fast_weight_update",
                fast_weight_update,
                "np.outer",
                "one outer product per batch row",
            ),
            (
                "delta_rule_update",
                delta_rule_update,
                "sum rule",
                "this is the sum rule",
            ),
            (
                "delta_rule_update",
                delta_rule_update,
                "transposed",
                "outer product is transposed",
            ),
            (
                "delta_rule_update",
                delta_rule_update,
                "S k",
                "S @ k reads the memory transposed",
            ),
            ("delta_rule_update", delta_rule_update, "sign", "sign of the correction"),
            ("ttt_grad", ttt_grad, "target x_v", "the target is x_v - x_k"),
            ("ttt_grad", ttt_grad, "transposed", "dW is transposed"),
            ("ttt_grad", ttt_grad, "per token", "sum their gradients"),
            ("ttt_grad", ttt_grad, "mean", "SUM over the m tokens"),
            ("ttt_grad", ttt_grad, "last token", "not just the last one"),
            ("ttt_grad", ttt_grad, "sign", "sign is flipped"),
            (
                "ttt_ln_grad",
                ttt_ln_grad,
                "no LN backward",
                "layer norm's backward of the residual",
            ),
            ("ttt_ln_grad", ttt_ln_grad, "target x_v", "the target is x_v - x_k"),
            ("ttt_ln_grad", ttt_ln_grad, "transposed", "dW is transposed"),
            ("ttt_ln_grad", ttt_ln_grad, "per token", "sum their gradients"),
        ]
    },  # fmt: skip
}


def run(name, fn, capsys):
    ok = CHECKERS[name][0](fn)
    return ok, capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_reference_passes_every_case(name, capsys):
    ok, out = run(name, CHECKERS[name][1], capsys)
    assert ok is True, out
    assert "✗" not in out and "cases pass" in out


@pytest.mark.parametrize(
    ("name", "fn", "hint"), list(CATALOGUE.values()), ids=list(CATALOGUE)
)
def test_planted_bug_is_caught_with_its_hint(name, fn, hint, capsys):
    ok, out = run(name, fn, capsys)
    assert ok is False, out
    first_hint = next(line for line in out.splitlines() if "Hint:" in line)
    assert hint in first_hint, out


def test_catalogue_covers_at_least_twelve_mistakes():
    assert len(CATALOGUE) >= 12


NEW_CHECKERS = ["rope", "layernorm_backward", "online_softmax", "online_attention",
                "linear_attention_rnn", "fast_weight_update", "delta_rule_update",
                "ttt_grad", "ttt_ln_grad"]  # fmt: skip


@pytest.mark.parametrize("name", NEW_CHECKERS)
def test_each_checker_of_exercises_11_to_16_has_at_least_two_planted_bugs(name):
    assert sum(p.values[0] == name for p in CATALOGUE.values()) >= 2


def test_not_implemented_is_reported_as_such_not_as_a_crash(capsys):
    def stub(x):
        raise NotImplementedError()

    ok, out = run("softmax", stub, capsys)
    assert ok is False
    assert "not implemented yet" in out and "✗" not in out


def test_other_exceptions_are_reported_with_type_message_and_hint(capsys):
    def broken(x):
        raise KeyError("oops")

    ok, out = run("softmax", broken, capsys)
    assert ok is False
    assert "raised KeyError: 'oops'" in out and "Hint:" in out


def test_verdict_names_the_case_the_element_and_expected_vs_got(capsys):
    ok, out = run("softmax", lambda x: softmax(x, safe=False), capsys)
    line = next(s for s in out.splitlines() if "✗ a row that is all -inf" in s)
    assert "y[1, 0] is NaN, expected 0" in line


def test_a_result_instead_of_a_function_is_explained(capsys):
    ok, out = run("softmax", np.zeros(3), capsys)
    assert ok is False and "pass the function itself" in out


def test_strict_mode_raises_on_failure_for_autograders(monkeypatch, capsys):
    monkeypatch.setenv("ATTENTION_NP_STRICT", "1")
    with pytest.raises(AssertionError):
        ex.check_softmax(lambda x: softmax(x, axis=-2))
    assert ex.check_softmax(softmax) is True


def test_checkers_leave_the_global_random_state_alone():
    np.random.seed(3)
    expected = np.random.random()
    np.random.seed(3)
    ex.check_attention(attention)
    assert np.random.random() == expected
