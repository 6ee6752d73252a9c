"""The package's decoder-only and encoder-decoder transformers in PyTorch eager.

Written op for op after ``attention_np.transformer`` (pre-norm blocks, GELU with the
tanh approximation, layer norm eps 1e-5, learned or sinusoidal positions, the same
flat parameter keys and the (D_in, D_out) weight layout ``x @ W + b``), so the same
parameter dict gives the same logits, and autograd gives the gradients the
hand-written backward must match (tests/test_encdec_torch_parity.py) and the speed
it is compared with (benchmarks/train_bench.py). Attention uses
``torch.nn.functional.scaled_dot_product_attention`` (boolean masks, True = may
attend, the package's convention); the additive score is written out.

Needs torch; the package itself never imports this file.
"""

import numpy as np
import torch
import torch.nn.functional as F

from attention_np.positional import sinusoidal_encoding


def tensors(params, *, requires_grad=True):
    """{key: torch leaf tensor} sharing nothing with the NumPy arrays."""
    return {
        k: torch.tensor(np.array(v), requires_grad=requires_grad)
        for k, v in params.items()
    }


def _lin(x, p, W, b):
    return x @ p[W] + p[b] if b in p else x @ p[W]


def _ln(x, p, name):
    D = x.shape[-1]
    return F.layer_norm(x, (D,), p[f"{name}.gamma"], p[f"{name}.beta"], eps=1e-5)


def _heads(t, H):
    B, n, D = t.shape
    return t.reshape(B, n, H, D // H).transpose(1, 2)  # (B, H, n, d)


def _merge(t):
    B, H, n, d = t.shape
    return t.transpose(1, 2).reshape(B, n, H * d)


def mha(x_q, x_kv, p, pre, H, *, causal=False, mask=None, score="dot"):
    """Multi-head attention with the package's keys ``{pre}.W_q`` ...; returns out."""
    q = _heads(_lin(x_q, p, f"{pre}.W_q", f"{pre}.b_q"), H)
    k = _heads(_lin(x_kv, p, f"{pre}.W_k", f"{pre}.b_k"), H)
    v = _heads(_lin(x_kv, p, f"{pre}.W_v", f"{pre}.b_v"), H)
    if score == "dot":
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    else:  # Bahdanau: e_ij = v_a . tanh(q_i W_a + k_j U_a)
        a, u = q @ p[f"{pre}.W_a"], k @ p[f"{pre}.U_a"]  # (B, H, N, A), (B, H, M, A)
        e = torch.tanh(a[..., :, None, :] + u[..., None, :, :]) @ p[f"{pre}.v_a"]
        if mask is not None:
            e = e.masked_fill(~mask, float("-inf"))
        o = torch.softmax(e, dim=-1) @ v
    return _lin(_merge(o), p, f"{pre}.W_o", f"{pre}.b_o")


def _mlp(x, p, pre):
    h = F.gelu(_lin(x, p, f"{pre}.W_1", f"{pre}.b_1"), approximate="tanh")
    return _lin(h, p, f"{pre}.W_2", f"{pre}.b_2")


def block(x, p, pre, H, *, causal, mask=None):
    """The pre-norm block (``block_forward``)."""
    h = _ln(x, p, f"{pre}.ln1")
    x = x + mha(h, h, p, f"{pre}.attn", H, causal=causal, mask=mask)
    return x + _mlp(_ln(x, p, f"{pre}.ln2"), p, f"{pre}.mlp")


def _embed(ids, p, table, pos_table, pos, dtype):
    x = p[table][torch.as_tensor(ids)]
    n, D = x.shape[1], x.shape[2]
    if pos == "learned":
        return x + p[pos_table][:n]
    if pos == "sinusoidal":
        return x + torch.as_tensor(sinusoidal_encoding(n, D), dtype=dtype)
    return x


def decoder_only_logits(ids, p, config):
    """logits (B, N, V) of ``model_forward`` (learned or sinusoidal positions)."""
    dtype = p["embed.W"].dtype
    x = _embed(ids, p, "embed.W", "pos.W", config.pos, dtype)
    for layer in range(config.n_layers):
        x = block(x, p, f"block{layer}", config.n_heads, causal=True)
    return _lin(_ln(x, p, "ln_f"), p, "head.W", "head.b")


def encdec_logits(src, tgt, p, config, src_lengths=None):
    """logits (B, N, V_tgt) of ``encdec_forward``."""
    dtype = p["src_embed.W"].dtype
    B, M = np.shape(src)
    lengths = np.full(B, M) if src_lengths is None else np.asarray(src_lengths)
    mask = torch.as_tensor(np.arange(M)[None, :] < lengths[:, None])[:, None, None]
    x = _embed(src, p, "src_embed.W", "src_pos.W", config.pos, dtype)
    for layer in range(config.n_enc_layers):
        x = block(x, p, f"enc{layer}", config.n_heads, causal=False, mask=mask)
    enc = _ln(x, p, "enc_ln")
    y = _embed(tgt, p, "tgt_embed.W", "tgt_pos.W", config.pos, dtype)
    H = config.n_heads
    for layer in range(config.n_dec_layers):
        pre = f"dec{layer}"
        h = _ln(y, p, f"{pre}.ln1")
        y = y + mha(h, h, p, f"{pre}.self", H, causal=True)
        h = _ln(y, p, f"{pre}.ln2")
        y = y + mha(h, enc, p, f"{pre}.cross", H, mask=mask, score=config.score)
        y = y + _mlp(_ln(y, p, f"{pre}.ln3"), p, f"{pre}.mlp")
    return _lin(_ln(y, p, "ln_f"), p, "head.W", "head.b")


def masked_cross_entropy(logits, targets, mask):
    """Mean cross-entropy over the positions where ``mask`` is True."""
    m = torch.as_tensor(mask)
    return F.cross_entropy(logits[m], torch.as_tensor(targets)[m])
