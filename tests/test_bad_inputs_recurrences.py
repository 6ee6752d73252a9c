"""Bad inputs to attention_np.recurrences raise TypeError/ValueError naming the
argument, before anything is computed, and change nothing they were given."""

import numpy as np
import pytest

from attention_np import recurrences as R
from attention_np.recurrences.mixer_gates import init_gate_params
from attention_np.recurrences.mixer_ops import l2norm_forward, short_conv_forward
from attention_np.recurrences.mixers import init_mixer_params, mixer_forward
from attention_np.recurrences.mqar import mqar_batch
from attention_np.recurrences.mqar_train import adam_update

rng = np.random.default_rng(0)
q = rng.standard_normal((2, 3, 6, 4))
k = rng.standard_normal((2, 3, 6, 4))
v = rng.standard_normal((2, 3, 6, 5))
la = -rng.uniform(0.1, 1.0, (2, 3, 6))
la_c = -rng.uniform(0.1, 1.0, (2, 3, 6, 4))
beta = rng.uniform(0.1, 0.9, (2, 3, 6))
S0 = rng.standard_normal((2, 3, 4, 5))

f_lin, f_ret, f_gla = R.linear_attn_forward, R.retention_forward, R.gla_forward
MODEL = R.init_mqar_params(8, 4, mixer="gla", n_heads=2, rng=np.random.default_rng(1))
f_m2, f_dn, f_gdn = R.mamba2_forward, R.deltanet_forward, R.gated_deltanet_forward

LG, TG = np.zeros((2, 3, 5)), np.ones((2, 3), int)  # logits (B, N, V), targets
TM = np.array([[True, False, True], [False, False, True]])  # the loss's query mask
OPT_P = {
    "w": np.zeros(3)
}  # copied by each optimiser case: a refused step writes nothing

CASES = [  # (id, call, exception, a word the message must contain)
    ("q is a list of strings", lambda: f_lin([["a"]], k, v), TypeError, "q"),
    ("q is int", lambda: f_lin(q.astype(int) // 1, k, v), TypeError, "q"),
    ("q is a dict", lambda: f_lin({"q": 1}, k, v), TypeError, "q"),
    ("q is 1-D", lambda: f_lin(q[0, 0, 0], k, v), ValueError, "q"),
    ("k wider than q", lambda: f_lin(q, k[..., :3], v), ValueError, "k"),
    ("k longer than q", lambda: f_lin(q, k[..., :5, :], v), ValueError, "k"),
    ("v of another length", lambda: f_lin(q, k, v[..., :5, :]), ValueError, "v"),
    ("v of other heads", lambda: f_lin(q, k, v[:, :2]), ValueError, "v"),
    ("mixed dtypes", lambda: f_lin(q.astype(np.float32), k, v), TypeError, "dtype"),
    (
        "empty sequence",
        lambda: f_lin(q[..., :0, :], k[..., :0, :], v[..., :0, :]),
        ValueError,
        "N >= 1",
    ),  # fmt: skip
    ("zero-width values", lambda: f_lin(q, k, v[..., :0]), ValueError, "d_v"),
    ("form misspelt", lambda: f_lin(q, k, v, form="chunked"), ValueError, "form"),
    ("form None", lambda: f_lin(q, k, v, form=None), ValueError, "form"),
    ("chunk_size 0", lambda: f_lin(q, k, v, chunk_size=0), ValueError, "chunk_size"),
    ("chunk_size 2.5", lambda: f_lin(q, k, v, chunk_size=2.5), TypeError, "chunk_size"),
    (
        "chunk_size True",
        lambda: f_lin(q, k, v, chunk_size=True),
        TypeError,
        "chunk_size",
    ),  # fmt: skip
    ("scale inf", lambda: f_lin(q, k, v, scale=np.inf), ValueError, "scale"),
    ("scale a string", lambda: f_lin(q, k, v, scale="1"), TypeError, "scale"),
    ("workers 0", lambda: f_gdn(q, k, v, la, beta, workers=0), ValueError, "workers"),
    ("workers a string", lambda: f_lin(q, k, v, workers="2"), TypeError, "workers"),
    (
        "initial_state (d_v, d_k)",
        lambda: f_lin(q, k, v, S0.swapaxes(-1, -2)),
        ValueError,
        "initial_state",
    ),  # fmt: skip
    (
        "initial_state float32",
        lambda: f_lin(q, k, v, S0.astype(np.float32)),
        TypeError,
        "initial_state",
    ),  # fmt: skip
    (
        "initial_state a list",
        lambda: f_lin(q, k, v, "zeros"),
        TypeError,
        "initial_state",
    ),  # fmt: skip
    ("gamma 0", lambda: f_ret(q, k, v, gamma=0.0), ValueError, "gamma"),
    ("gamma above 1", lambda: f_ret(q, k, v, gamma=1.5), ValueError, "gamma"),
    (
        "gamma per batch row",
        lambda: f_ret(q, k, v, gamma=np.full(4, 0.9)),
        ValueError,
        "gamma",
    ),  # fmt: skip
    ("gamma True", lambda: f_ret(q, k, v, gamma=True), TypeError, "gamma"),
    ("gla gate per head", lambda: f_gla(q, k, v, la), ValueError, "log_alpha"),
    ("gla gate positive", lambda: f_gla(q, k, v, -la_c), ValueError, "log_alpha"),
    (
        "gla gate -inf",
        lambda: f_gla(q, k, v, np.where(la_c < -0.5, -np.inf, la_c)),
        ValueError,
        "log_alpha",
    ),  # fmt: skip
    ("mamba2 gate per channel", lambda: f_m2(q, k, v, la_c), ValueError, "log_alpha"),
    (
        "mamba2 gate int",
        lambda: f_m2(q, k, v, np.zeros((2, 3, 6), int)),
        TypeError,
        "log_alpha",
    ),  # fmt: skip
    (
        "mamba2 gate float32",
        lambda: f_m2(q, k, v, la.astype(np.float32)),
        TypeError,
        "log_alpha",
    ),  # fmt: skip
    (
        "beta missing a position",
        lambda: f_dn(q, k, v, beta[..., :5]),
        ValueError,
        "beta",
    ),  # fmt: skip
    ("beta a number", lambda: f_dn(q, k, v, 0.5), ValueError, "beta"),
    (
        "gated: gate and beta swapped",
        lambda: f_gdn(q, k, v, beta, la),
        ValueError,
        "log_alpha",
    ),  # fmt: skip
    ("gated: beta per channel", lambda: f_gdn(q, k, v, la, la_c), ValueError, "beta"),
    (
        "dfinal_state of the wrong shape",
        lambda: R.with_final_state_grad(f_lin(q, k, v)[1], S0[0]),
        ValueError,
        "dfinal_state",
    ),  # fmt: skip
    (
        "dout of the wrong shape",
        lambda: R.linear_attn_backward(v[..., :5, :], f_lin(q, k, v)[1]),
        ValueError,
        "dout",
    ),  # fmt: skip
    (
        "mqar: too many pairs for the length",
        lambda: mqar_batch(8, seq_len=16, vocab_size=64, batch=2, rng=rng),
        ValueError,
        "seq_len",
    ),  # fmt: skip
    (
        "mqar: too few keys",
        lambda: mqar_batch(8, seq_len=64, vocab_size=12, batch=2, rng=rng),
        ValueError,
        "vocab_size",
    ),  # fmt: skip
    (
        "mqar: no rng",
        lambda: mqar_batch(2, seq_len=16, vocab_size=64, batch=2, rng=0),
        TypeError,
        "rng",
    ),
    (
        "mqar: power_a 0",
        lambda: mqar_batch(2, seq_len=16, vocab_size=64, batch=2, rng=rng, power_a=0),
        ValueError,
        "power_a",
    ),  # fmt: skip
    (
        "mixer kind misspelt",
        lambda: init_mixer_params(8, 2, kind="mamba", rng=rng),
        ValueError,
        "kind",
    ),
    (
        "mixer heads do not divide D",
        lambda: init_mixer_params(8, 3, kind="gla", rng=rng),
        ValueError,
        "n_heads",
    ),
    (
        "mixer params missing a gate",
        lambda: mixer_forward(
            np.zeros((1, 4, 8)),
            init_mixer_params(8, 2, kind="deltanet", rng=rng),
            kind="gated_deltanet",
            n_heads=2,
        ),
        ValueError,
        "W_dt",
    ),  # fmt: skip
    (
        "short conv taps of another width",
        lambda: short_conv_forward(np.zeros((1, 4, 8)), np.zeros((3, 6))),
        ValueError,
        "w",
    ),  # fmt: skip
    ("l2norm eps 0", lambda: l2norm_forward(q, eps=0.0), ValueError, "eps"),
    (
        "model mask of another shape",
        lambda: R.mqar_model_forward(
            np.zeros((2, 4), int), MODEL, np.ones((2, 3), bool), mixer="gla", n_heads=2
        ),
        ValueError,
        "mask",
    ),  # fmt: skip
    (
        "model mask not boolean",
        lambda: R.mqar_model_forward(
            np.zeros((2, 4), int), MODEL, np.ones((2, 4)), mixer="gla", n_heads=2
        ),
        TypeError,
        "mask",
    ),  # fmt: skip
    ("loss mask not boolean", lambda: R.masked_cross_entropy(LG, TG, TM.astype(int)),
     TypeError, "mask"),
    ("loss target negative", lambda: R.masked_cross_entropy(LG, TG - 2, TM),
     ValueError, "targets"),
    ("loss target >= V", lambda: R.masked_cross_entropy(LG, TG + 5, TM),
     ValueError, "targets"),
    ("loss float targets", lambda: R.masked_cross_entropy(LG, TG * 1.0, TM),
     TypeError, "targets"),
    ("loss logits of another length", lambda: R.masked_cross_entropy(LG[:, :2], TG, TM),
     ValueError, "logits"),
    ("loss rows != True entries", lambda: R.masked_cross_entropy(LG[0, :2], TG, TM),
     ValueError, "logits"),
    ("loss integer logits", lambda: R.masked_cross_entropy(LG.astype(int), TG, TM),
     TypeError, "logits"),
    ("model params an array",
     lambda: R.mqar_model_forward(np.zeros((2, 4), int), np.ones(3), mixer="gla",
                                  n_heads=2), TypeError, "params"),
    ("model params without emb",
     lambda: R.mqar_model_forward(np.zeros((2, 4), int),
                                  {k_: v_ for k_, v_ in MODEL.items() if k_ != "emb"},
                                  mixer="gla", n_heads=2), ValueError, "params"),
    ("model ids 3-D",
     lambda: R.mqar_model_forward(np.zeros((2, 3, 4), int), MODEL, mixer="gla",
                                  n_heads=2), ValueError, "ids"),
    ("final-state grad on no cache", lambda: R.with_final_state_grad(None, S0),
     TypeError, "cache"),
    ("adam_update float32 grad for a float64 param",
     lambda: adam_update(dict(OPT_P), {"w": np.ones(3, np.float32)}, {}, lr=0.1),
     TypeError, r"grads\['w'\] has dtype float32"),
    ("adam_update (1,) grad for a (3,) param",
     lambda: adam_update(dict(OPT_P), {"w": np.ones(1)}, {}, lr=0.1),
     ValueError, r"grads\['w'\](1,) must have the shape"),
    ("adam_update missing grad",
     lambda: adam_update(dict(OPT_P), {}, {}, lr=0.1), ValueError, "grads"),
    ("init_gate_params int dtype",
     lambda: init_gate_params(4, 2, kind="gla", rng=rng, dtype=np.int32),
     TypeError, "dtype"),
    ("init_gate_params unknown kind",
     lambda: init_gate_params(4, 2, kind="lstm", rng=rng), ValueError, "kind"),
]  # fmt: skip


@pytest.mark.parametrize("call, exc, word", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_raises_a_clear_error(call, exc, word):
    with pytest.raises(exc, match=word.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_a_failed_call_changes_nothing():
    arrays = [a.copy() for a in (q, k, v, la, beta, S0)]
    with pytest.raises(ValueError):
        f_gdn(q, k, v, la, beta[..., :5], S0)
    for a, b in zip(arrays, (q, k, v, la, beta, S0), strict=True):
        np.testing.assert_array_equal(a, b)
