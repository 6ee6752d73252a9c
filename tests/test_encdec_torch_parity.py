"""Whole-model parity with PyTorch autograd: the encoder-decoder's (and the
decoder-only model's) logits and every parameter gradient equal those of the same
model written in PyTorch (benchmarks/torch_models.py) on the same weights, float64,
to 1e-9. Optional: skipped when torch is not installed."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; the parity tests are optional"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import torch_models as T  # noqa: E402

from attention_np.transformer import (  # noqa: E402
    EncDecConfig,
    TransformerConfig,
    encdec_backward,
    encdec_forward,
    init_encdec_params,
    init_params,
    model_backward,
    model_forward,
)

ATOL = 1e-9


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def noisy(params, rng):
    return {k: p + 0.2 * rng.standard_normal(p.shape) for k, p in params.items()}


def compare(ours_logits, ours_grads, torch_logits, tp):
    np.testing.assert_allclose(torch_logits.detach().numpy(), ours_logits, atol=ATOL)
    for k, g in ours_grads.items():
        np.testing.assert_allclose(tp[k].grad.numpy(), g, atol=ATOL, err_msg=k)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"score": "additive"},
        {"pos": "sinusoidal", "bias": False},
        {"score": "additive", "n_enc_layers": 1, "n_dec_layers": 3},
    ],
    ids=["dot", "additive", "sinusoidal-no-bias", "additive-1+3"],
)
def test_encdec_gradients_equal_pytorch_autograd(rng, kw):
    sizes = dict(src_vocab=9, tgt_vocab=7, max_src_len=6, max_tgt_len=5, d_model=12)
    sizes.update(n_heads=3, d_mlp=10)
    config = EncDecConfig(**{**sizes, **kw})
    params = noisy(init_encdec_params(config, rng=rng), rng)
    src, tgt = rng.integers(0, 9, (3, 6)), rng.integers(0, 7, (3, 5))
    lengths = np.array([6, 2, 4])
    logits, cache = encdec_forward(src, tgt, params, config, src_lengths=lengths)
    dout = rng.standard_normal(logits.shape)
    grads = encdec_backward(dout, cache)
    tp = T.tensors(params)
    t_logits = T.encdec_logits(src, tgt, tp, config, lengths)
    (t_logits * torch.from_numpy(dout)).sum().backward()
    compare(logits, grads, t_logits, tp)


def test_decoder_only_gradients_equal_pytorch_autograd(rng):
    config = TransformerConfig(vocab_size=7, max_len=8, d_model=12, n_heads=3, d_mlp=10)
    params = noisy(init_params(config, rng=rng), rng)
    ids = rng.integers(0, 7, (2, 8))
    logits, cache = model_forward(ids, params, config)
    dout = rng.standard_normal(logits.shape)
    grads = model_backward(dout, cache)
    tp = T.tensors(params)
    t_logits = T.decoder_only_logits(ids, tp, config)
    (t_logits * torch.from_numpy(dout)).sum().backward()
    compare(logits, grads, t_logits, tp)


def test_a_training_loss_gradient_equals_pytorch_through_masked_cross_entropy(rng):
    from attention_np.train import translation_batch, translation_model_config
    from attention_np.transformer import cross_entropy_backward, cross_entropy_forward

    config = translation_model_config(d_model=16, n_heads=2, d_mlp=24)
    params = init_encdec_params(config, rng=rng)
    b = translation_batch(rng, 8)
    logits, cache = encdec_forward(
        b.src, b.tgt_in, params, config, src_lengths=b.src_lengths
    )
    loss, lc = cross_entropy_forward(logits, b.tgt_out, b.tgt_mask)
    grads = encdec_backward(cross_entropy_backward(np.ones(()), lc), cache)
    tp = T.tensors(params)
    t_logits = T.encdec_logits(b.src, b.tgt_in, tp, config, b.src_lengths)
    t_loss = T.masked_cross_entropy(t_logits, b.tgt_out, b.tgt_mask)
    t_loss.backward()
    assert float(loss) == pytest.approx(t_loss.item(), abs=ATOL)
    compare(logits, grads, t_logits, tp)
