"""Train the encoder-decoder on the toy translation task, and evaluate it.

    for each step: batch -> encdec_forward -> loss -> encdec_backward -> clip -> Adam

Every gradient comes from the package's hand-written backward functions. The
evaluation translates held-out sentences (never seen in training) with greedy or
beam decoding and counts the exact matches, end token included.

Threads: as in ``loop.train``, BLAS is limited to one thread while training runs
(the matrices are small; threads would spend their time synchronising).
"""

import dataclasses

import numpy as np

from .. import validate as V
from ..transformer import (
    EncDecConfig,
    adam_init,
    beam_search,
    check_encdec_params,
    cross_entropy_backward,
    cross_entropy_forward,
    encdec_backward,
    encdec_forward,
    greedy_decode,
    init_encdec_params,
)
from .loop import blas_threads
from .schedule import OptimConfig, optimizer_update
from .translate import (
    BOS,
    EOS,
    MAX_SRC,
    MAX_TGT,
    PAD,
    SRC_VOCAB,
    TGT_VOCAB,
    TranslationBatch,
    alignment_scores,
    translation_batch,
)


@dataclasses.dataclass(frozen=True)
class TranslateConfig(OptimConfig):
    """Optimiser settings of the translation run (see ``OptimConfig``)."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 30


def translation_model_config(**overrides):
    """An EncDecConfig sized for the task: 2 + 2 layers, 4 heads, width 64 (the
    ``overrides`` are EncDecConfig fields, e.g. score="additive")."""
    sizes = dict(d_model=64, n_heads=4, n_enc_layers=2, n_dec_layers=2)
    sizes.update(overrides)
    return EncDecConfig(
        src_vocab=SRC_VOCAB,
        tgt_vocab=TGT_VOCAB,
        max_src_len=MAX_SRC,
        max_tgt_len=MAX_TGT,
        **sizes,
    )


def check_fits(model_config):
    """Raise unless the model's vocabularies and lengths fit the translation task."""
    c = V.instance("model_config", model_config, EncDecConfig)
    want = (SRC_VOCAB, TGT_VOCAB, MAX_SRC, MAX_TGT)
    got = (c.src_vocab, c.tgt_vocab, c.max_src_len, c.max_tgt_len)
    if got[:2] != want[:2] or got[2] < want[2] or got[3] < want[3]:
        raise ValueError(
            f"model_config (src_vocab, tgt_vocab, max_src_len, max_tgt_len) = {got} "
            f"does not fit the task: need {want[:2]} and lengths >= {want[2:]}"
        )


def translation_step(params, opt_state, batch, model_config, cfg, step):
    """One update in place; returns (loss, token accuracy) of the batch before it.

    Raises FloatingPointError (and updates nothing) when the loss or a gradient is
    not finite.
    """
    V.instance("batch", batch, TranslationBatch)
    V.instance("cfg", cfg, OptimConfig)
    logits, cache = encdec_forward(
        batch.src, batch.tgt_in, params, model_config, src_lengths=batch.src_lengths
    )  # (B, N, V)
    loss, loss_cache = cross_entropy_forward(logits, batch.tgt_out, batch.tgt_mask)
    if not np.isfinite(loss):
        raise FloatingPointError(
            f"training diverged: the loss is {float(loss)} at step {step} "
            f"(lr={cfg.lr}); try a smaller learning rate"
        )
    dlogits = cross_entropy_backward(np.ones((), logits.dtype), loss_cache)
    optimizer_update(params, encdec_backward(dlogits, cache), opt_state, cfg, step)
    hits = (logits.argmax(axis=-1) == batch.tgt_out) & batch.tgt_mask
    return float(loss), float(hits.sum() / batch.tgt_mask.sum())


def progress_range(steps, desc, progress):
    """range(steps), in a tqdm progress bar when ``progress``."""
    if not progress:
        return range(steps)
    from tqdm import tqdm  # lazy: the package itself needs only NumPy

    return tqdm(range(steps), desc=desc, mininterval=1.0)


def _check_run(model_config, cfg, rng, progress, threads, every):
    check_fits(model_config)
    V.instance("cfg", cfg, OptimConfig)
    V.rng_arg(rng)
    V.bool_arg("progress", progress)
    if threads is not None:
        V.positive_int("threads", threads)
    return V.positive_int("every", every)


def train_translation(
    model_config, cfg, *, rng, progress=True, threads=1, callback=None, every=50
):
    """Train a fresh encoder-decoder on the translation task for cfg.steps steps.

    Args:
        model_config: an EncDecConfig that fits the task (``check_fits``).
        cfg: a TranslateConfig; rng: np.random.Generator (init and batches).
        progress: tqdm progress bar; threads: BLAS threads (None: leave alone).
        callback: called as callback(step, params) before steps 0, every,
            2 every, ... and after the last one (step = cfg.steps); e.g. to keep
            snapshots of the params. It must not change them.

    Returns:
        params and a history dict of lists: step, loss, accuracy (every batch is
        fresh, so these are also numbers on unseen sentences of the training half).
    """
    every = _check_run(model_config, cfg, rng, progress, threads, every)
    params = init_encdec_params(model_config, rng=rng, dtype=np.dtype(cfg.dtype))
    opt_state = adam_init(params)
    history = {"step": [], "loss": [], "accuracy": []}
    steps = progress_range(cfg.steps, "translate", progress)
    with blas_threads(threads):
        for step in steps:
            if callback is not None and step % every == 0:
                callback(step, params)
            batch = translation_batch(rng, cfg.batch_size)
            loss, acc = translation_step(
                params, opt_state, batch, model_config, cfg, step
            )
            for key, value in zip(history, (step, loss, acc), strict=True):
                history[key].append(value)
            if progress and step % 25 == 0:
                steps.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", refresh=False)
    if callback is not None:
        callback(cfg.steps, params)
    return params, history


def translate_batch(params, model_config, batch, *, beam_width=1):
    """(B, N) translations of ``batch.src`` padded with PAD (greedy for width 1)."""
    V.instance("batch", batch, TranslationBatch)
    kw = dict(bos=BOS, eos=EOS, pad=PAD, src_lengths=batch.src_lengths)
    K = V.positive_int("beam_width", beam_width)
    if K == 1:
        out = greedy_decode(batch.src, params, model_config, **kw)
    else:
        out = beam_search(batch.src, params, model_config, beam_width=K, **kw)
    tokens = np.full(batch.tgt_out.shape, PAD)  # (B, N)
    tokens[:, : out.tokens.shape[1]] = out.tokens
    return tokens


def evaluate_translation(params, model_config, *, rng, n_examples=1000, beam_width=1):
    """Scores on held-out sentences: exact_match (decoded, end token included),
    token_accuracy (teacher forcing) and alignment (the best decoder head's
    ``alignment_scores``, teacher forcing)."""
    check_fits(model_config)
    check_encdec_params(params, model_config)
    V.rng_arg(rng)
    n = V.positive_int("n_examples", n_examples)
    batch = translation_batch(rng, n, held_out=True)
    tokens = translate_batch(params, model_config, batch, beam_width=beam_width)
    logits, cache = encdec_forward(
        batch.src, batch.tgt_in, params, model_config, src_lengths=batch.src_lengths
    )
    hits = (logits.argmax(axis=-1) == batch.tgt_out) & batch.tgt_mask
    return {
        "exact_match": float(np.all(tokens == batch.tgt_out, axis=1).mean()),
        "token_accuracy": float(hits.sum() / batch.tgt_mask.sum()),
        "alignment": float(alignment_scores(cache.cross_weights, batch.gold).max()),
    }


def train_translation_probed(model_config, cfg, probe, *, rng, every=25, show=0):
    """``train_translation`` that watches the cross-attention on a fixed ``probe``
    batch every ``every`` steps (and after the last one), teacher-forced.

    Returns:
        params, history and a dict: step (S,), alignment (S, L, H) ``alignment_scores``
        on the whole probe batch, weights (S, L, H, N, M) the cross-attention of
        probe example ``show``.
    """
    V.instance("probe", probe, TranslationBatch)
    show = V.positive_int("show", show, allow_zero=True)
    if show >= len(probe.src):
        raise ValueError(f"show={show} must index one of the {len(probe.src)} probes")
    seen = {"step": [], "alignment": [], "weights": []}

    def watch(step, params):
        _, cache = encdec_forward(
            probe.src, probe.tgt_in, params, model_config, src_lengths=probe.src_lengths
        )
        W = cache.cross_weights  # (L, B, H, N, M)
        seen["step"].append(step)
        seen["alignment"].append(alignment_scores(W, probe.gold))
        seen["weights"].append(W[:, show])

    params, history = train_translation(
        model_config, cfg, rng=rng, progress=False, callback=watch, every=every
    )
    return params, history, {k: np.array(v) for k, v in seen.items()}
