"""The encoder-decoder: cross-attention, decoder block, whole model, decoding,
the bidirectional encoder model and the evicting stream cache.

(The finite-difference checks of every new layer run in tests/test_transformer.py,
over transformer.gradcheck_cases.CASES, which includes encdec_cases.)"""

import itertools

import numpy as np
import pytest

from attention_np import mha_forward
from attention_np.masks import padding_mask
from attention_np.transformer import (
    EncDecConfig,
    TransformerConfig,
    beam_search,
    cross_attention_backward,
    cross_attention_decode,
    cross_attention_forward,
    cross_memory,
    decode_step,
    decoder_block_backward,
    decoder_block_forward,
    encdec_backward,
    encdec_forward,
    encoder_model_backward,
    encoder_model_forward,
    greedy_decode,
    init_cross_attention_params,
    init_decoder_block_params,
    init_encdec_params,
    init_params,
    model_backward,
    model_forward,
    read_stream,
    start_decoding,
)
from attention_np.transformer.encdec_config import encdec_param_shapes

B, N, M, D, H = 3, 5, 4, 12, 3
BOS, EOS = 1, 2


def noisy(params, rng, scale=0.1):
    return {k: p + scale * rng.standard_normal(p.shape) for k, p in params.items()}


def config(**kw):
    sizes = dict(src_vocab=9, tgt_vocab=7, max_src_len=6, max_tgt_len=7, d_model=D)
    sizes.update(n_heads=H, n_enc_layers=2, n_dec_layers=2, d_mlp=10)
    return EncDecConfig(**{**sizes, **kw})


def model(rng, **kw):
    c = config(**kw)
    return c, noisy(init_encdec_params(c, rng=rng), rng, 0.3)


def source(rng, c, lengths=(6, 3, 5)):
    src = rng.integers(0, c.src_vocab, size=(len(lengths), c.max_src_len))
    return src, np.array(lengths)


# --- cross-attention -----------------------------------------------------------------


def test_dot_cross_attention_is_mha_forward_without_causality(rng):
    params = noisy(init_cross_attention_params(D, H, d_kv=5, rng=rng), rng)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, 5))
    mask = padding_mask([4, 2, 1], M)
    out, cache = cross_attention_forward(x_q, x_kv, params, mask, n_heads=H)
    ref, ref_cache = mha_forward(x_q, x_kv, params, mask, n_heads=H, causal=False)
    np.testing.assert_array_equal(out, ref)
    assert cache.weights.shape == (B, H, N, M)
    np.testing.assert_array_equal(cache.weights[:, :, :, 3][1:], 0.0)  # padding


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_cross_attention_rows_sum_to_one_and_padding_gets_nothing(rng, score):
    params = noisy(init_cross_attention_params(D, H, score=score, rng=rng), rng)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D))
    out, cache = cross_attention_forward(
        x_q, x_kv, params, padding_mask([4, 2, 3], M), n_heads=H, score=score
    )
    w = cache.weights
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    assert np.all(w[1, :, :, 2:] == 0) and np.all(w[2, :, :, 3:] == 0)
    dx_q, dx_kv, _ = cross_attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(dx_kv[1, 2:] == 0) and dx_q.shape == x_q.shape


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_decode_with_a_memory_equals_the_full_cross_attention(rng, score):
    params = noisy(init_cross_attention_params(D, H, score=score, rng=rng), rng)
    x_q, x_kv = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D))
    mask = padding_mask([4, 2, 3], M)
    out, cache = cross_attention_forward(
        x_q, x_kv, params, mask, n_heads=H, score=score
    )
    memory = cross_memory(x_kv, params, n_heads=H, score=score)
    assert memory.k.shape == (B, H, M, D // H)
    for i in range(N):
        row, w = cross_attention_decode(
            x_q[:, i : i + 1], memory, params, mask, n_heads=H, score=score
        )
        np.testing.assert_allclose(row, out[:, i : i + 1], atol=1e-12)
        np.testing.assert_allclose(w, cache.weights[:, :, i : i + 1], atol=1e-12)


def test_additive_cross_attention_differs_from_dot_and_has_its_own_params(rng):
    add = init_cross_attention_params(D, H, score="additive", d_attn=5, rng=rng)
    dot = init_cross_attention_params(D, H, rng=np.random.default_rng(0))
    assert set(add) - set(dot) == {"W_a", "U_a", "v_a"}
    assert add["W_a"].shape == (D // H, 5) and add["v_a"].shape == (5,)


# --- decoder block -------------------------------------------------------------------


def test_decoder_block_with_silent_branches_is_the_identity(rng):
    params = init_decoder_block_params(D, H, 10, rng=rng)
    for k in ("self.W_o", "self.b_o", "cross.W_o", "cross.b_o", "mlp.W_2", "mlp.b_2"):
        params[k] = np.zeros_like(params[k])
    x, enc = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D))
    out, cache = decoder_block_forward(x, enc, params, n_heads=H, causal=True)
    dout = rng.standard_normal(out.shape)
    dx, denc, _ = decoder_block_backward(dout, cache)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(dx, dout)
    np.testing.assert_array_equal(denc, 0.0)


def test_decoder_block_is_causal_over_the_target(rng):
    params = noisy(init_decoder_block_params(D, H, 10, rng=rng), rng)
    x, enc = rng.standard_normal((B, N, D)), rng.standard_normal((B, M, D))
    out, cache = decoder_block_forward(x, enc, params, n_heads=H, causal=True)
    dout = np.zeros_like(out)
    dout[:, 2] = rng.standard_normal((B, D))  # one query position
    dx, denc, _ = decoder_block_backward(dout, cache)
    assert np.all(dx[:, 3:] == 0) and np.any(dx[:, :3] != 0)
    assert np.all(denc != 0)  # every source token can reach target position 2


# --- whole model ---------------------------------------------------------------------


def test_param_shapes_are_what_init_makes(rng):
    for kw in ({}, {"score": "additive", "pos": "sinusoidal", "bias": False}):
        c = config(**kw)
        params = init_encdec_params(c, rng=rng)
        assert {k: v.shape for k, v in params.items()} == encdec_param_shapes(c)


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_model_is_causal_over_the_target_and_reads_the_whole_source(rng, score):
    c, params = model(rng, score=score)
    src, lengths = source(rng, c)
    tgt = rng.integers(0, c.tgt_vocab, size=(3, 6))
    logits, _ = encdec_forward(src, tgt, params, c, src_lengths=lengths)
    later = tgt.copy()
    later[:, 4:] = (later[:, 4:] + 1) % c.tgt_vocab
    changed, _ = encdec_forward(src, later, params, c, src_lengths=lengths)
    np.testing.assert_allclose(changed[:, :4], logits[:, :4], atol=1e-12)
    assert not np.allclose(changed[:, 4:], logits[:, 4:])
    last_src = src.copy()
    last_src[0, 5] = (last_src[0, 5] + 1) % c.src_vocab  # row 0 has 6 real tokens
    moved, _ = encdec_forward(last_src, tgt, params, c, src_lengths=lengths)
    assert np.all(np.abs(moved[0] - logits[0]).max(axis=-1) > 0)  # every position


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_padded_source_tokens_change_nothing_forward_or_backward(rng, score):
    c, params = model(rng, score=score)
    src, lengths = source(rng, c)
    tgt = rng.integers(0, c.tgt_vocab, size=(3, 6))
    other = src.copy()
    other[1, 3:] = (other[1, 3:] + 3) % c.src_vocab  # the padding of rows 1 and 2
    other[2, 5:] = (other[2, 5:] + 1) % c.src_vocab
    dout = rng.standard_normal((3, 6, c.tgt_vocab))
    results = []
    for s in (src, other):
        logits, cache = encdec_forward(s, tgt, params, c, src_lengths=lengths)
        grads = encdec_backward(dout, cache)
        results.append((logits, grads))
    # (equal up to rounding: a softmax block may share one shift across its rows)
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-12)
    for k in params:  # padded positions get exactly zero gradient, so even the
        # embedding rows of the changed padding tokens are unchanged
        np.testing.assert_allclose(
            results[0][1][k], results[1][1][k], atol=1e-12, err_msg=k
        )


def test_padded_target_positions_change_nothing_at_the_real_ones(rng):
    c, params = model(rng)
    src, lengths = source(rng, c)
    tgt = rng.integers(0, c.tgt_vocab, size=(3, 6))
    tgt_mask = np.arange(6)[None] < np.array([[6], [3], [4]])
    other = np.where(tgt_mask, tgt, (tgt + 2) % c.tgt_vocab)
    a, _ = encdec_forward(src, tgt, params, c, src_lengths=lengths)
    b, _ = encdec_forward(src, other, params, c, src_lengths=lengths)
    np.testing.assert_allclose(a[tgt_mask], b[tgt_mask], atol=1e-12)


def test_a_source_of_length_zero_gives_finite_logits_and_gradients(rng):
    c, params = model(rng)
    src, _ = source(rng, c)
    tgt = rng.integers(0, c.tgt_vocab, size=(3, 4))
    logits, cache = encdec_forward(src, tgt, params, c, src_lengths=np.array([0, 2, 6]))
    grads = encdec_backward(rng.standard_normal(logits.shape), cache)
    assert np.all(np.isfinite(logits)) and all(
        np.isfinite(g).all() for g in grads.values()
    )
    assert np.all(cache.cross_weights[:, 0] == 0)  # nothing to attend to


def test_attention_maps_have_their_documented_shapes(rng):
    c, params = model(rng, n_enc_layers=1, n_dec_layers=2)
    src, lengths = source(rng, c)
    _, cache = encdec_forward(src, src[:, :4] % 7, params, c, src_lengths=lengths)
    assert cache.enc_weights.shape == (1, 3, H, 6, 6)
    assert cache.self_weights.shape == (2, 3, H, 4, 4)
    assert cache.cross_weights.shape == (2, 3, H, 4, 6)


def test_float32_model_stays_float32(rng):
    c = config()
    params = init_encdec_params(c, rng=rng, dtype=np.float32)
    src, lengths = source(rng, c)
    logits, cache = encdec_forward(src, src[:, :3] % 7, params, c, src_lengths=lengths)
    grads = encdec_backward(np.ones_like(logits), cache)
    assert logits.dtype == np.float32
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


# --- decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_cached_decoding_equals_full_recomputation(rng, score):
    c, params = model(rng, score=score)
    src, lengths = source(rng, c)
    tgt = rng.integers(0, c.tgt_vocab, size=(3, 7))
    full, full_cache = encdec_forward(src, tgt, params, c, src_lengths=lengths)
    state = start_decoding(src, params, c, src_lengths=lengths)
    steps = [decode_step(tgt[:, :3], state, params, c)]  # a 3-token prefill
    steps += [decode_step(tgt[:, t : t + 1], state, params, c) for t in range(3, 7)]
    logits = np.concatenate([s[0] for s in steps], axis=1)
    np.testing.assert_allclose(logits, full, atol=1e-10)
    cross = np.concatenate([s[1][1] for s in steps], axis=3)  # (L, B, H, N, M)
    np.testing.assert_allclose(cross, full_cache.cross_weights, atol=1e-12)
    assert [k.length for k in state.kv_caches] == [7, 7]


@pytest.mark.parametrize(
    "score, seed", list(itertools.product(["dot", "additive"], [0, 1, 2]))
)
def test_beam_width_one_is_greedy_decoding(score, seed):
    rng = np.random.default_rng(seed)
    c, params = model(rng, score=score)
    src, lengths = source(rng, c)
    kw = dict(bos=BOS, eos=EOS, src_lengths=lengths)
    greedy = greedy_decode(src, params, c, **kw)
    beam = beam_search(src, params, c, beam_width=1, **kw)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_allclose(beam.logprob, greedy.logprob, atol=1e-12)


def test_greedy_tokens_are_the_argmax_of_the_full_forward_and_scored_by_it(rng):
    c, params = model(rng)
    src, lengths = source(rng, c)
    out = greedy_decode(src, params, c, bos=BOS, eos=EOS, src_lengths=lengths)
    tgt = np.concatenate([np.full((3, 1), BOS), out.tokens[:, :-1]], axis=1)
    logits, _ = encdec_forward(src, tgt, params, c, src_lengths=lengths)
    alive = np.cumsum(out.tokens == EOS, axis=1) - (out.tokens == EOS) == 0  # up to EOS
    np.testing.assert_array_equal(logits.argmax(-1)[alive], out.tokens[alive])
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, out.tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(
        out.logprob, np.where(alive, picked, 0).sum(1), atol=1e-10
    )


def test_a_beam_as_wide_as_every_prefix_finds_the_most_likely_sequence(rng):
    c, params = model(rng, tgt_vocab=4, max_tgt_len=3)
    src, lengths = source(rng, c, lengths=(6, 2))
    out = beam_search(
        src, params, c, beam_width=16, bos=BOS, eos=EOS, src_lengths=lengths
    )
    for b in range(2):  # brute force over all 4^3 continuations (EOS ends them)
        best = -np.inf
        for seq in itertools.product(range(4), repeat=3):
            tgt = np.array([[BOS, *seq[:2]]])
            logits, _ = encdec_forward(
                src[b : b + 1], tgt, params, c, src_lengths=lengths[b : b + 1]
            )
            logp = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
            n = seq.index(EOS) + 1 if EOS in seq else 3
            best = max(best, sum(logp[t, seq[t]] for t in range(n)))
        assert out.logprob[b] == pytest.approx(best, abs=1e-10)


def test_wider_beams_never_score_below_the_best_finished_greedy_sequence(rng):
    c, params = model(rng, tgt_vocab=5, max_tgt_len=4)
    src, lengths = source(rng, c)
    kw = dict(bos=BOS, eos=EOS, src_lengths=lengths)
    exhaustive = beam_search(src, params, c, beam_width=125, **kw).logprob
    greedy = greedy_decode(src, params, c, **kw).logprob
    assert np.all(exhaustive >= greedy - 1e-12)


# --- the bidirectional encoder model and the streaming cache ------------------------


def test_causal_encoder_model_is_the_decoder_only_model(rng):
    c = TransformerConfig(vocab_size=7, max_len=8, d_model=D, n_heads=H, d_mlp=10)
    params = noisy(init_params(c, rng=rng), rng)
    ids = rng.integers(0, 7, size=(2, 8))
    a, ca = encoder_model_forward(ids, params, c, causal=True)
    b, cb = model_forward(ids, params, c)
    np.testing.assert_array_equal(a, b)
    dout = rng.standard_normal(a.shape)
    ga, gb = encoder_model_backward(dout, ca), model_backward(dout, cb)
    for k in params:
        np.testing.assert_array_equal(ga[k], gb[k])


def test_bidirectional_encoder_model_reads_the_right_hand_side(rng):
    c = TransformerConfig(vocab_size=7, max_len=8, d_model=D, n_heads=H, d_mlp=10)
    params = noisy(init_params(c, rng=rng), rng)
    ids = rng.integers(0, 7, size=(2, 8))
    changed = ids.copy()
    changed[:, -1] = (changed[:, -1] + 1) % 7
    a, _ = encoder_model_forward(ids, params, c, causal=False)
    b, _ = encoder_model_forward(changed, params, c, causal=False)
    assert np.all(np.abs(a - b).max(axis=-1) > 0)  # every position sees the last token
    ca, _ = encoder_model_forward(ids, params, c, causal=True)
    cb, _ = encoder_model_forward(changed, params, c, causal=True)
    np.testing.assert_allclose(ca[:, :-1], cb[:, :-1], atol=1e-12)


def stream_model(rng, **kw):
    c = TransformerConfig(
        vocab_size=6, max_len=12, d_model=8, n_heads=2, d_mlp=10, pos="rope", **kw
    )
    return c, noisy(init_params(c, rng=rng), rng, 0.3)


@pytest.mark.parametrize("n_kv_heads", [None, 1])
def test_a_stream_cache_that_evicts_nothing_equals_the_full_forward(rng, n_kv_heads):
    c, params = stream_model(rng, n_kv_heads=n_kv_heads)
    ids = rng.integers(0, 6, size=(2, 12))
    full, _ = model_forward(ids, params, c)
    for n_sink, window in [(0, None), (0, 12), (2, 10), (4, 100)]:
        logits, _ = read_stream(ids, params, c, n_sink=n_sink, window=window)
        np.testing.assert_allclose(logits, full, atol=1e-12)


def test_an_evicting_cache_keeps_the_sinks_and_the_window(rng):
    c, params = stream_model(rng)
    ids = rng.integers(0, 6, size=(2, 20))  # longer than max_len: RoPE has no table
    full, _ = model_forward(ids[:, :12], params, c)
    logits, weights = read_stream(ids, params, c, n_sink=2, window=5)
    np.testing.assert_allclose(
        logits[:, :7], full[:, :7], atol=1e-12
    )  # before eviction
    assert not np.allclose(logits[:, 7:12], full[:, 7:12])  # eviction changes things
    assert [w.shape for w in weights] == [(2, 2, 1, 7)] * 2  # 2 sinks + 5 recent
    only_window, w = read_stream(ids, params, c, n_sink=0, window=5)
    assert w[0].shape[-1] == 5 and np.all(np.isfinite(only_window))
