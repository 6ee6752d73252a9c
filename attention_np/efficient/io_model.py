"""An IO model of attention: words moved between a slow and a small fast memory.

A GPU keeps Q, K, V and the output in its large, slow HBM and computes in a small,
fast on-chip SRAM. FlashAttention's argument (Dao et al. 2022, arXiv 2205.14135,
Theorem 2) counts the traffic between the two: with a fast memory of S words
(d <= S <= N d), standard attention makes Theta(N d + N^2) slow-memory accesses,
tiled attention Theta(N^2 d^2 / S); by Proposition 3 no exact algorithm makes
asymptotically fewer than Theta(N^2 d^2 / S) for every S in [d, N d].

Here both schedules *run* on a simulated machine: ``FastMemory`` holds at most S
words, a schedule loads tiles (words read from slow memory), stores results (words
written) and frees them, and a step that would overfill it raises. The counts are
those of a concrete loop nest; the bounds are only compared with them.

- ``standard_attention_io``: Algorithm 0 of the paper: S = Q K^T written to slow
  memory, read back for the softmax, P written, read back for O = P V.
- ``tiled_attention_io``: the loop of ``flash_attention_reference``: a block of
  queries stays in fast memory with its running max, sum and accumulator while
  the key/value blocks stream past; only O and its log-sum-exp are written.

``qkv=(q, k, v)`` ((N, d) arrays) runs the numbers too, so a test can check that
the loop nest counted is attention. One head, N queries and N keys, d_v = d.
``causal`` is required: the standard schedule masks in the softmax (same
traffic), the tiled one skips key tiles wholly in the future; ``align`` is
checked and ignored (N == M: one rule). A word is one number of any precision.
"""

from typing import NamedTuple

import numpy as np

from .. import validate as V


class IOCount(NamedTuple):
    """Words moved by one schedule (a word = one number of any precision)."""

    reads: int  # words read from slow memory into fast memory
    writes: int  # words written from fast memory to slow memory
    peak: int  # most words held in fast memory at once (<= S)
    block_q: int  # query rows per tile
    block_k: int  # key rows per tile
    by_array: dict  # "read K", "write S", ...: words moved per array and direction

    @property
    def total(self):
        """reads + writes: the slow-memory accesses of Theorem 2."""
        return self.reads + self.writes


class FastMemory:
    """A fast memory of ``size`` words that counts its traffic with slow memory."""

    def __init__(self, size):
        self.size, self.used, self.peak = size, 0, 0
        self.reads = self.writes = 0
        self.by_array = {}

    def hold(self, words):
        """Claim room for ``words`` (scratch or loaded data); raise when full."""
        if self.used + words > self.size:
            raise MemoryError(
                f"{self.used} + {words} words do not fit a fast memory of {self.size}"
            )
        self.used += words
        self.peak = max(self.peak, self.used)

    def load(self, words, array):
        """Read ``words`` words of ``array`` ("Q", "K", ...) into fast memory."""
        self.hold(words)
        self.reads += words
        self._tally("read " + array, words)

    def store(self, words, array):
        """Write ``words`` words of ``array`` (held in fast memory) to slow memory."""
        self.writes += words
        self._tally("write " + array, words)

    def _tally(self, key, words):
        self.by_array[key] = self.by_array.get(key, 0) + words

    def free(self, words):
        self.used -= words

    def count(self, block_q, block_k):
        return IOCount(
            self.reads, self.writes, self.peak, block_q, block_k, dict(self.by_array)
        )


def _sizes(N, d, S, causal=False, align="top_left"):
    N, d, S = (V.positive_int(n, x) for n, x in (("N", N), ("d", d), ("S", S)))
    V.align_arg(align)
    return N, d, S, V.causal_arg(causal)


def _qkv(qkv, N, d):
    """Validated (q, k, v) of shape (N, d) each, or None."""
    if qkv is None:
        return None
    if not isinstance(qkv, (tuple, list)) or len(qkv) != 3:
        raise TypeError("qkv must be a tuple (q, k, v) of (N, d) arrays")
    arrays = [V.float_array(n, a, ndim=2) for n, a in zip("qkv", qkv, strict=True)]
    for name, a in zip("qkv", arrays, strict=True):
        if a.shape != (N, d):
            raise ValueError(f"qkv: {name}{a.shape} must be (N, d) = {(N, d)}")
    return arrays


def standard_blocks(d, S):
    """Side b of the square tiles of the standard schedule: 2 b d + b^2 <= S."""
    d, S = V.positive_int("d", d), V.positive_int("S", S)
    b = int(np.sqrt(d * d + S) - d)  # root of b^2 + 2 d b - S
    while b > 0 and 2 * b * d + b * b > S:
        b -= 1
    if b < 1:
        raise ValueError(f"S = {S} words cannot hold one row of Q and K (2 d + 1)")
    return b


def tiled_blocks(d, S):
    """(block_q, block_k) of the tiled schedule for a fast memory of S words.

    Like the paper's rule (B_c = ceil(S / 4d), B_r = min(B_c, d), for its loop
    order) turned around for queries outside: key tiles of at most d rows taking
    at most S/4 words, and the largest query tile that fits next to them:
    block_q (2 d + 2 + block_k) + 2 block_k d <= S.
    """
    d, S = V.positive_int("d", d), V.positive_int("S", S)
    block_k = max(1, min(d, S // (8 * d)))
    block_q = (S - 2 * block_k * d) // (2 * d + 2 + block_k)
    if block_q < 1:
        raise ValueError(f"S = {S} words is below the tiled minimum 4 d + 3")
    return block_q, block_k


def standard_attention_io(N, d, S, *, causal, align="top_left", qkv=None):
    """Slow-memory traffic of standard attention (Algorithm 0 of Dao et al. 2022).

    Args:
        N: sequence length (queries = keys); d: head width (values too).
        S: words of fast memory (at least 2 d + 1).
        causal: True or False (required): mask key j > i in the softmax.
        align: checked and ignored (N == M).
        qkv: optional (q, k, v) (N, d) arrays: compute the output as well.

    Returns:
        (out or None, IOCount).
    """
    N, d, S, causal = _sizes(N, d, S, causal, align)
    arrays = _qkv(qkv, N, d)
    b = min(standard_blocks(d, S), N)
    mem = FastMemory(S)
    scores = _matmul_qk(mem, N, d, b, arrays)  # 1. S = Q K^T -> slow memory
    if scores is not None and causal:
        scores[np.triu_indices(N, 1)] = -np.inf  # key j > i: weight 0
    probs = _softmax_rows(mem, N, scores)  # 2. P = softmax(S) -> slow memory
    out = _matmul_pv(mem, N, d, b, probs, arrays)  # 3. O = P V -> slow memory
    return out, mem.count(b, b)


def _matmul_qk(mem, N, d, b, arrays):
    """S = Q K^T / sqrt(d) in (b, b) tiles; Q_i stays while the K_j stream past."""
    scores = None if arrays is None else np.empty((N, N))
    for i0 in range(0, N, b):
        r = min(b, N - i0)
        mem.load(r * d, "Q")  # Q_i
        for j0 in range(0, N, b):
            c = min(b, N - j0)
            mem.load(c * d, "K")  # K_j
            mem.hold(r * c)  # the score tile
            if arrays is not None:
                q, k, _ = arrays
                scores[i0 : i0 + r, j0 : j0 + c] = q[i0 : i0 + r] @ k[j0 : j0 + c].T
            mem.store(r * c, "S")  # write S_ij
            mem.free(r * c + c * d)
        mem.free(r * d)
    return None if scores is None else scores / np.sqrt(d)


def _softmax_rows(mem, N, scores):
    """P = softmax(S): whole rows read once when they fit; otherwise each row is
    read twice in chunks (a running max-and-sum pass, then a normalising pass)."""
    rows = mem.size // N  # whole rows that fit at once
    if rows:
        for i0 in range(0, N, rows):
            words = min(rows, N - i0) * N
            mem.load(words, "S")
            mem.store(words, "P")  # P overwrites S in fast memory
            mem.free(words)
    else:
        mem.hold(2)  # the row's running max and sum
        chunks = [min(mem.size - 2, N - j0) for j0 in range(0, N, mem.size - 2)]
        for _ in range(N):
            for words in chunks:  # pass 1: max and sum
                mem.load(words, "S")
                mem.free(words)
            for words in chunks:  # pass 2: normalise, write
                mem.load(words, "S")
                mem.store(words, "P")
                mem.free(words)
        mem.free(2)
    if scores is None:
        return None
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _matmul_pv(mem, N, d, b, probs, arrays):
    """O = P V in row blocks: O_i accumulates in fast memory over (P_ij, V_j)."""
    out = None if arrays is None else np.zeros((N, d))
    for i0 in range(0, N, b):
        r = min(b, N - i0)
        mem.hold(r * d)  # accumulator O_i
        for j0 in range(0, N, b):
            c = min(b, N - j0)
            mem.load(r * c, "P")  # P_ij
            mem.load(c * d, "V")  # V_j
            if arrays is not None:
                v = arrays[2]
                out[i0 : i0 + r] += probs[i0 : i0 + r, j0 : j0 + c] @ v[j0 : j0 + c]
            mem.free(r * c + c * d)
        mem.store(r * d, "O")  # write O_i
        mem.free(r * d)
    return out


def tiled_attention_io(
    N, d, S, *, causal, align="top_left", block_q=None, block_k=None, qkv=None
):
    """Slow-memory traffic of tiled (Flash) attention, query tiles outside.

    Args:
        N: sequence length (queries = keys); d: head width (values too).
        S: words of fast memory (at least 4 d + 3 with the default tiles).
        causal: True or False (required): skip key tiles wholly in the future.
        align: checked and ignored (N == M).
        block_q, block_k: tile rows; None for ``tiled_blocks(d, S)`` (capped at N).
        qkv: optional (q, k, v) (N, d) arrays: compute the output as well.

    Returns:
        (out or None, IOCount); writes are the output and its (N,) log-sum-exp.
    """
    N, d, S, causal = _sizes(N, d, S, causal, align)
    arrays = _qkv(qkv, N, d)
    auto_q, auto_k = tiled_blocks(d, S) if None in (block_q, block_k) else (0, 0)
    bq = min(V.positive_int("block_q", auto_q if block_q is None else block_q), N)
    bk = min(V.positive_int("block_k", auto_k if block_k is None else block_k), N)
    if bq * (2 * d + 2 + bk) + 2 * bk * d > S:
        raise ValueError(f"block_q={bq}, block_k={bk} do not fit S = {S} words")
    mem = FastMemory(S)
    out = None if arrays is None else np.zeros((N, d))
    for i0 in range(0, N, bq):
        r = min(bq, N - i0)
        mem.load(r * d, "Q")  # Q_i
        mem.hold(r * d + 2 * r)  # accumulator, running max m and sum l
        state = None if arrays is None else _start(r, d)
        for j0 in range(0, i0 + r if causal else N, bk):  # causal: no future tile
            c = min(bk, N - j0)
            mem.load(c * d, "K")  # K_j
            mem.load(c * d, "V")  # V_j
            mem.hold(r * c)  # the score tile (P overwrites it)
            if arrays is not None:
                state = _online_step(state, arrays, (i0, r, j0, c), causal)
            mem.free(r * c + 2 * c * d)
        mem.store(r * d, "O")  # write O_i
        mem.store(r, "L")  # and L_i = m + log l
        mem.free(2 * r * d + 2 * r)
        if arrays is not None:
            m, l, acc = state
            out[i0 : i0 + r] = acc / l[:, None]
    return out, mem.count(bq, bk)


def _start(r, d):
    return np.full(r, -np.inf), np.zeros(r), np.zeros((r, d))


def _online_step(state, arrays, tile, causal):
    """One tile of the online softmax (lesson 14): rescale, add, keep the max."""
    (q, k, v), (m, l, acc), (i0, r, j0, c) = arrays, state, tile
    s = q[i0 : i0 + r] @ k[j0 : j0 + c].T / np.sqrt(q.shape[1])  # (r, c)
    if causal:  # key j0 + b is in the future of query i0 + a when j0 + b > i0 + a
        s[np.arange(j0, j0 + c)[None, :] > np.arange(i0, i0 + r)[:, None]] = -np.inf
    m_new = np.maximum(m, s.max(axis=1))
    p = np.exp(s - m_new[:, None])
    alpha = np.exp(m - m_new)  # 0 on the first tile (m = -inf)
    return m_new, alpha * l + p.sum(axis=1), alpha[:, None] * acc + p @ v[j0 : j0 + c]


def theorem2_bounds(N, d, S):
    """(N d + N^2, N^2 d^2 / S): Theorem 2's orders for standard and tiled attention
    (constants dropped: compare trends and ratios, not values)."""
    N, d, S, _ = _sizes(N, d, S)
    return N * d + N * N, N * N * d * d / S
