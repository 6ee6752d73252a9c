"""Bad inputs to attention_np.parallel and block attention: each misuse raises
ValueError/TypeError with a message that names the argument, leaves every array it
was given unchanged and never touches the global NumPy RNG; the MPI program's flags
end with argparse's ``error:`` and exit status 2; huge finite inputs under any mask
give no NaN."""

import re
import subprocess
import sys

import numpy as np
import pytest

from attention_np import efficient as eff
from attention_np import parallel as par
from attention_np.parallel.gradcheck_cases import OneRankComm

R = np.random.default_rng(0)
q = R.standard_normal((2, 3, 4, 5))  # (B, H, N, d)
k = R.standard_normal((2, 3, 8, 5))  # (B, H, M, d)
v = R.standard_normal((2, 3, 8, 6))
MASK = R.random((2, 1, 4, 8)) > 0.3
Q_POS, K_POS = np.arange(4) + 4, np.arange(8)
BLOCK_OUT, BLOCK_CACHE = eff.block_attention_forward(q, k, v, causal=True)
RING_OUT, RING_CACHE = par.ring_attention_forward(q, k, v, n_ranks=2, causal=True)
U_OUT, U_CACHE = par.ulysses_attention_forward(q, k, v, n_ranks=3, causal=False)
COMM = OneRankComm()
MPI_OUT, MPI_CACHE = par.ring_attention_mpi_forward(q, k, v, comm=COMM, causal=True)
UMPI_OUT, UMPI_CACHE = par.ulysses_mpi_forward(q, k, v, comm=COMM, causal=True)
O_A, LSE_A = R.standard_normal((2, 3, 4, 6)), R.standard_normal((2, 3, 4))
MERGED, MERGE_CACHE = par.merge_partials_forward(O_A, LSE_A, O_A, LSE_A)
PLAN = par.make_plan("zigzag", 4, 2, causal=True, kv_len=8)
POSITIONS = par.layout_positions("striped", 8, 2)  # (2, 4)
ARRAYS = [q, k, v, MASK, Q_POS, K_POS, O_A, LSE_A, POSITIONS, BLOCK_OUT, RING_OUT]
ARRAYS += [U_OUT, MPI_OUT, UMPI_OUT, RING_CACHE.lse, BLOCK_CACHE.lse]


def lit(text):
    """Regex matching ``text`` literally (messages are full of brackets)."""
    return re.escape(text)


def block(*arrays, **options):
    return eff.block_attention_forward(*(arrays or (q, k, v)), **options)


def ring(*arrays, **options):
    return par.ring_attention_forward(*(arrays or (q, k, v)), **options)


def ulysses(*arrays, **options):
    return par.ulysses_attention_forward(*(arrays or (q, k, v)), **options)


def positions(q_positions=Q_POS, k_positions=K_POS, **options):
    options = {"causal": True, **options}
    return block(q_positions=q_positions, k_positions=k_positions, **options)


# (id, callable, exception type, regex the message must match)
CATALOGUE = [
    # --- block attention ------------------------------------------------------------
    ("block causal='no'", lambda: block(causal="no"), TypeError, "causal"),
    ("block without causal", lambda: block(), TypeError, "causal"),
    (
        "block align='middle'",
        lambda: block(causal=True, align="middle"),
        ValueError,
        lit("align must be one of ('top_left', 'bottom_right'), got 'middle'"),
    ),
    (
        "block float mask",
        lambda: block(q, k, v, MASK.astype(float), causal=False),
        TypeError,
        "mask must be a boolean array",
    ),
    (
        "block mask of the wrong shape",
        lambda: block(q, k, v, MASK[..., :5], causal=False),
        ValueError,
        lit("mask(2, 1, 4, 5) does not broadcast"),
    ),
    (
        "block block_q=0",
        lambda: block(causal=False, block_q=0),
        ValueError,
        "block_q must be >= 1",
    ),
    (
        "block workers=0",
        lambda: block(causal=False, workers=0),
        ValueError,
        "workers must be >= 1",
    ),
    (
        "block integer q",
        lambda: block(q.astype(int), k, v, causal=False),
        TypeError,
        "q must be a float16/float32/float64 array",
    ),
    (
        "block float positions",
        lambda: positions(q_positions=Q_POS * 1.0),
        TypeError,
        "q_positions must hold integers, got dtype float64",
    ),
    (
        "block bool positions",
        lambda: positions(k_positions=K_POS > 2),
        TypeError,
        "k_positions must hold integers, got dtype bool",
    ),
    (
        "block positions as a string",
        lambda: positions(q_positions="0123"),
        TypeError,
        "q_positions must be a 1-D integer array",
    ),
    (
        "block k_positions too short",
        lambda: positions(k_positions=K_POS[:5]),
        ValueError,
        lit("k_positions(5,) must have shape (8,)"),
    ),
    (
        "block 2-D q_positions",
        lambda: positions(q_positions=Q_POS[None]),
        ValueError,
        lit("q_positions(1, 4) must have shape (4,)"),
    ),
    (
        "block negative positions",
        lambda: positions(q_positions=Q_POS - 5),
        ValueError,
        "q_positions must be >= 0, got -1",
    ),
    (
        "block q_positions alone",
        lambda: block(causal=True, q_positions=Q_POS),
        ValueError,
        "q_positions and k_positions must be given together",
    ),
    (
        "block positions with bottom_right",
        lambda: positions(align="bottom_right"),
        ValueError,
        "align='bottom_right' cannot be used with q_positions",
    ),
    (
        "block_attention_cache lse of the wrong shape",
        lambda: eff.block_attention_cache(
            q, k, v, BLOCK_OUT, LSE_A[..., :3], causal=True
        ),
        ValueError,
        lit("lse(2, 3, 3) must have shape (2, 3, 4)"),
    ),
    (
        "block_attention_cache out of the wrong shape",
        lambda: eff.block_attention_cache(
            q, k, v, BLOCK_OUT[..., :5], LSE_A, causal=True
        ),
        ValueError,
        lit("out(2, 3, 4, 5) must have shape (2, 3, 4, 6)"),
    ),
    (
        "block_attention_cache integer lse",
        lambda: eff.block_attention_cache(
            q, k, v, BLOCK_OUT, LSE_A.astype(int), causal=True
        ),
        TypeError,
        "lse must be a float16/float32/float64 array",
    ),
    (
        "block_attention_backward dout with a last axis of 1",
        lambda: eff.block_attention_backward(np.ones((2, 3, 4, 1)), BLOCK_CACHE),
        ValueError,
        lit("dout(2, 3, 4, 1) must have the shape of the forward's output"),
    ),
    # --- ring attention (simulated) ------------------------------------------------
    (
        "ring n_ranks that do not split N",
        lambda: ring(n_ranks=3, causal=True, layout="striped"),
        ValueError,
        lit("the striped layout needs seq_len divisible by n_ranks = 3, got seq_len=4"),
    ),
    (
        "ring zigzag keys that do not split",
        lambda: ring(q, k[..., :6, :], v[..., :6, :], n_ranks=2, causal=True),
        ValueError,
        lit("needs kv_len divisible by 2 * n_ranks = 4, got kv_len=6"),
    ),
    (
        "ring layout='diagonal'",
        lambda: ring(n_ranks=2, causal=True, layout="diagonal"),
        ValueError,
        "layout must be one of",
    ),
    (
        "ring n_ranks=0",
        lambda: ring(n_ranks=0, causal=True),
        ValueError,
        "n_ranks must be >= 1, got 0",
    ),
    (
        "ring n_ranks=2.0",
        lambda: ring(n_ranks=2.0, causal=True),
        TypeError,
        "n_ranks must be an int",
    ),
    (
        "ring causal=1",
        lambda: ring(n_ranks=2, causal=1),
        TypeError,
        lit("causal must be True or False, got 1"),
    ),
    ("ring without causal", lambda: ring(n_ranks=2), TypeError, "causal"),
    (
        "ring align='bottom'",
        lambda: ring(n_ranks=2, causal=True, align="bottom"),
        ValueError,
        "align must be one of",
    ),
    (
        "ring integer mask",
        lambda: ring(q, k, v, MASK.astype(int), n_ranks=2, causal=True),
        TypeError,
        "mask must be a boolean array",
    ),
    (
        "ring mask of the wrong shape",
        lambda: ring(q, k, v, MASK[..., :3, :], n_ranks=2, causal=True),
        ValueError,
        lit("mask(2, 1, 3, 8) does not broadcast"),
    ),
    (
        "ring block_q=-1",
        lambda: ring(n_ranks=2, causal=True, block_q=-1),
        ValueError,
        "block_q must be >= 1",
    ),
    (
        "ring scale=nan",
        lambda: ring(n_ranks=2, causal=True, scale=np.nan),
        ValueError,
        "scale must be finite",
    ),
    (
        "ring k and v of different lengths",
        lambda: ring(q, k, v[..., :4, :], n_ranks=2, causal=True),
        ValueError,
        "must share the length M",
    ),
    (
        "ring_attention_backward dout of one head",
        lambda: par.ring_attention_backward(np.ones((4, 6)), RING_CACHE),
        ValueError,
        lit("dout(4, 6) must have the shape of the forward's output (2, 3, 4, 6)"),
    ),
    (
        "ring_backward_trace dout with a last axis of 1",
        lambda: par.ring_backward_trace(np.ones((2, 3, 4, 1)), RING_CACHE),
        ValueError,
        lit("dout(2, 3, 4, 1) must have the shape"),
    ),
    # --- ring attention over MPI (a one-rank stand-in communicator) ----------------
    (
        "ring over MPI comm=None",
        lambda: par.ring_attention_mpi_forward(q, k, v, comm=None, causal=True),
        TypeError,
        "comm must be an mpi4py communicator",
    ),
    (
        "ring over MPI causal='no'",
        lambda: par.ring_attention_mpi_forward(q, k, v, comm=COMM, causal="no"),
        TypeError,
        "causal must be True or False",
    ),
    (
        "ring over MPI mask of the wrong shape",
        lambda: par.ring_attention_mpi_forward(
            q, k, v, MASK[..., :7], comm=COMM, causal=True
        ),
        ValueError,
        lit("mask(2, 1, 4, 7) does not broadcast"),
    ),
    (
        "ring over MPI zigzag shard of odd length",
        lambda: par.ring_attention_mpi_forward(
            q[..., :3, :], k, v, comm=COMM, causal=True
        ),
        ValueError,
        "needs seq_len divisible by 2 \\* n_ranks = 2, got seq_len=3",
    ),
    (
        "ring_attention_mpi_backward dout of one sequence",
        lambda: par.ring_attention_mpi_backward(np.ones((4, 6)), MPI_CACHE),
        ValueError,
        lit("dout(4, 6) must have the shape of the forward's output (2, 3, 4, 6)"),
    ),
    # --- Ulysses -------------------------------------------------------------------
    (
        "ulysses ranks that do not divide heads",
        lambda: ulysses(n_ranks=2, causal=True),
        ValueError,
        "n_ranks=2 does not divide H=3",
    ),
    (
        "ulysses without a head axis",
        lambda: ulysses(q[0, 0], k[0, 0], v[0, 0], n_ranks=1, causal=True),
        ValueError,
        "head axis",
    ),
    (
        "ulysses heads that differ",
        lambda: ulysses(q, k[:, :1], v[:, :1], n_ranks=1, causal=True),
        ValueError,
        "head axis",
    ),
    (
        "ulysses causal='no'",
        lambda: ulysses(n_ranks=1, causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "ulysses mask of the wrong shape",
        lambda: ulysses(q, k, v, MASK[:1, :, :2], n_ranks=3, causal=True),
        ValueError,
        "mask\\(1, 1, 2, 8\\) does not broadcast",
    ),
    (
        "ulysses n_ranks=0",
        lambda: ulysses(n_ranks=0, causal=True),
        ValueError,
        "n_ranks must be >= 1",
    ),
    (
        "ulysses_attention_backward dout with an extra axis",
        lambda: par.ulysses_attention_backward(np.ones((1, 2, 3, 4, 6)), U_CACHE),
        ValueError,
        lit("dout(1, 2, 3, 4, 6) must have the shape"),
    ),
    (
        "ulysses over MPI comm=object()",
        lambda: par.ulysses_mpi_forward(q, k, v, comm=object(), causal=True),
        TypeError,
        "comm must be an mpi4py communicator",
    ),
    (
        "ulysses over MPI causal=None",
        lambda: par.ulysses_mpi_forward(q, k, v, comm=COMM, causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "ulysses_mpi_backward dout with a last axis of 1",
        lambda: par.ulysses_mpi_backward(np.ones((2, 3, 4, 1)), UMPI_CACHE),
        ValueError,
        lit(
            "dout(2, 3, 4, 1) must have the shape of the forward's output (2, 3, 4, 6)"
        ),
    ),
    (
        "check_heads 3 heads on 2 ranks",
        lambda: par.check_heads(3, 2),
        ValueError,
        "n_ranks=2 does not divide H=3",
    ),
    (
        "alltoall of a ragged list",
        lambda: par.alltoall([[1, 2], [3]]),
        ValueError,
        "sendbufs\\[1\\] holds 1 messages",
    ),
    (
        "alltoall of an array",
        lambda: par.alltoall(np.ones((2, 2))),
        TypeError,
        "sendbufs must be a list",
    ),
    # --- merge_partials ------------------------------------------------------------
    (
        "merge outputs of different widths",
        lambda: par.merge_partials(O_A, LSE_A, O_A[..., :5], LSE_A),
        ValueError,
        lit("o_a(2, 3, 4, 6) and o_b(2, 3, 4, 5)"),
    ),
    (
        "merge lse of the wrong shape",
        lambda: par.merge_partials(O_A, LSE_A, O_A, LSE_A[..., :2]),
        ValueError,
        lit("lse_b(2, 3, 2) must have shape (2, 3, 4)"),
    ),
    (
        "merge form='log'",
        lambda: par.merge_partials_forward(O_A, LSE_A, O_A, LSE_A, form="log"),
        ValueError,
        "form must be one of",
    ),
    (
        "merge lse = +inf",
        lambda: par.merge_partials(O_A, LSE_A + np.inf, O_A, LSE_A),
        ValueError,
        "lse_a must be < \\+inf",
    ),
    (
        "merge integer lse",
        lambda: par.merge_partials(O_A, LSE_A, O_A, LSE_A.astype(int)),
        TypeError,
        "lse_b must be a float16/float32/float64 array",
    ),
    (
        "merge float32 lse with float64 o",
        lambda: par.merge_partials(O_A, LSE_A.astype(np.float32), O_A, LSE_A),
        TypeError,
        "lse_a float32",
    ),
    (
        "merge_partials_backward dout as a bare array",
        lambda: par.merge_partials_backward(O_A, MERGE_CACHE),
        TypeError,
        "dout must be a Partial\\(out, lse\\)",
    ),
    (
        "merge_partials_backward dlse with a last axis of 1",
        lambda: par.merge_partials_backward(
            par.Partial(O_A, np.ones((2, 3, 1))), MERGE_CACHE
        ),
        ValueError,
        lit("dlse(2, 3, 1) must have the shape of the forward's output"),
    ),
    # --- layouts, plans, rank states -----------------------------------------------
    (
        "layout_positions zigzag 12 over 4",
        lambda: par.layout_positions("zigzag", 12, 4),
        ValueError,
        lit("2 * n_ranks = 8, got seq_len=12"),
    ),
    (
        "token_owner n_ranks=True",
        lambda: par.token_owner("striped", 8, True),
        TypeError,
        "n_ranks must be an int",
    ),
    (
        "step_tiles causal='no'",
        lambda: par.step_tiles("zigzag", 0, 1, 2, 4, causal="no"),
        TypeError,
        lit("causal must be True or False, got 'no'"),
    ),
    (
        "step_tiles without causal",
        lambda: par.step_tiles("zigzag", 0, 1, 2, 4),
        TypeError,
        "causal",
    ),
    (
        "step_tiles rank 2 of 2",
        lambda: par.step_tiles("zigzag", 2, 1, 2, 4, causal=True),
        ValueError,
        "rank must be < n_ranks = 2, got 2",
    ),
    (
        "step_tiles odd zigzag shard",
        lambda: par.step_tiles("zigzag", 0, 1, 2, 3, causal=True),
        ValueError,
        "c \\* n_ranks divisible by 2 \\* n_ranks",
    ),
    (
        "step_tiles align='left'",
        lambda: par.step_tiles("striped", 0, 1, 2, 4, causal=True, align="left"),
        ValueError,
        "align must be one of",
    ),
    (
        "work_formula causal=None",
        lambda: par.work_formula("zigzag", 8, 2, causal=None),
        TypeError,
        lit("causal must be True or False, got None"),
    ),
    (
        "work_formula seq_len=0",
        lambda: par.work_formula("striped", 0, 2, causal=True),
        ValueError,
        "seq_len must be >= 1, got 0",
    ),
    (
        "tile_pairs of a tuple",
        lambda: par.tile_pairs((slice(0, 2), slice(0, 2), 0)),
        TypeError,
        "tile must be a layouts.Tile",
    ),
    (
        "shard float positions",
        lambda: par.shard(q, POSITIONS * 1.0),
        TypeError,
        "positions must be a \\(P, c\\) integer array",
    ),
    (
        "shard positions beyond the sequence",
        lambda: par.shard(q, POSITIONS),
        ValueError,
        lit("positions must lie in [0, 4)"),
    ),
    (
        "unshard 3 parts for 2 ranks",
        lambda: par.unshard([q, q, q], POSITIONS),
        ValueError,
        lit("positions(2, 4) has 2 rows for 3 parts"),
    ),
    (
        "make_plan kv_len that does not split",
        lambda: par.make_plan("striped", 4, 2, causal=True, kv_len=5),
        ValueError,
        "kv_len divisible by n_ranks = 2",
    ),
    (
        "make_plan block_k=0",
        lambda: par.make_plan("striped", 4, 2, causal=True, block_k=0),
        ValueError,
        "block_k must be >= 1",
    ),
    (
        "make_plan without causal",
        lambda: par.make_plan("striped", 4, 2),
        TypeError,
        "causal",
    ),
    (
        "init_states plan=None",
        lambda: par.init_states(q, k, v, plan=None),
        TypeError,
        "plan must be a RingPlan",
    ),
    (
        "init_states arrays of other lengths",
        lambda: par.init_states(q, q, q, plan=PLAN),
        ValueError,
        lit("must have the plan's lengths (N, M) = (4, 8)"),
    ),
    (
        "forward_steps with one state for two ranks",
        lambda: list(par.forward_steps([None], PLAN)),
        ValueError,
        "states must be a list of P = 2 RankState",
    ),
    # --- traces and volumes --------------------------------------------------------
    (
        "work_table of None",
        lambda: par.work_table(None),
        TypeError,
        "trace must be a non-empty list of StepRecord",
    ),
    (
        "holder_table of an empty list",
        lambda: par.holder_table([]),
        TypeError,
        "trace must be a non-empty list",
    ),
    (
        "bytes_sent of numbers",
        lambda: par.bytes_sent([1, 2]),
        TypeError,
        "trace must hold StepRecord, got int",
    ),
    (
        "coverage with positions for 3 ranks",
        lambda: par.coverage(RING_CACHE.trace, np.zeros((3, 2), int)),
        ValueError,
        lit("positions(3, 2) must be (P, c) with P = 2"),
    ),
    (
        "ring_elements backward=1",
        lambda: par.ring_elements(8, 2, 4, backward=1),
        TypeError,
        lit("backward must be True or False, got 1"),
    ),
    (
        "ulysses_elements exact='yes'",
        lambda: par.ulysses_elements(8, 2, 4, exact="yes"),
        TypeError,
        lit("exact must be True or False, got 'yes'"),
    ),
    (
        "ring_step_elements width=0",
        lambda: par.ring_step_elements(8, 2, 0),
        ValueError,
        "width must be >= 1, got 0",
    ),
    (
        "comm_table ranks as a string",
        lambda: par.comm_table(24, "24", 8),
        TypeError,
        "ranks must be a list of ints",
    ),
    (
        "comm_table a zero in ranks",
        lambda: par.comm_table(8, [0], 4),
        ValueError,
        r"ranks\[0\] must be >= 1, got 0",
    ),
    (
        "comm_table a float in ranks",
        lambda: par.comm_table(8, [2, 2.5], 4),
        TypeError,
        r"ranks\[1\]",
    ),
    (
        "comm_table ranks that do not divide seq_len",
        lambda: par.comm_table(8, [2, 3], 4),
        ValueError,
        r"ranks\[1\]=3 must divide seq_len=8",
    ),
    ("comm_table empty ranks", lambda: par.comm_table(8, [], 4), ValueError, "ranks"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_raises_a_clear_error_and_touches_nothing(case):
    _, call, exc, pattern = case
    before = [a.copy() for a in ARRAYS]
    state = np.random.get_state()[1].copy()
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) in (ValueError, TypeError)
    for a, b in zip(ARRAYS, before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_catalogue_is_large_and_distinct():
    assert len(CATALOGUE) >= 40
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_a_failed_backward_leaves_the_cache_as_it_was():
    states = [(s.out.copy(), s.lse.copy(), s.held_block) for s in RING_CACHE.states]
    with pytest.raises(ValueError, match="dout"):
        par.ring_attention_backward(np.ones((2, 3, 4, 1)), RING_CACHE)
    for s, (out, lse, held) in zip(RING_CACHE.states, states, strict=True):
        np.testing.assert_array_equal(s.out, out)
        np.testing.assert_array_equal(s.lse, lse)
        assert s.held_block == held


# --- the MPI program's command line -------------------------------------------------

MODULE = "attention_np.parallel.ring"


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--seq-len", "-5"], "--seq-len"),
        (["--seq-len", "many"], "--seq-len"),
        (["--layout", "nope"], "--layout"),
        (["--heads", "0"], "--heads"),
        (["--head-dim", "-1"], "--head-dim"),
        (["--batch", "0"], "--batch"),
        (["--block-q", "0"], "--block-q"),
        (["--block-k", "2.5"], "--block-k"),
        (["--blas-threads", "0"], "--blas-threads"),
        (["--tol", "nan"], "--tol"),
        (["--tol", "-1"], "--tol"),
        (["--seed", "-1"], "--seed"),
        (["--algorithm", "tree"], "--algorithm"),
        (["--dtype", "int8"], "--dtype"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_the_mpi_program_rejects_bad_flags_with_error_and_status_2(argv, flag):
    result = subprocess.run(
        [sys.executable, "-m", MODULE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and flag in result.stderr
    assert "Traceback" not in result.stderr


def test_a_length_the_ranks_cannot_split_is_an_error_with_status_2():
    pytest.importorskip("mpi4py")  # one process: MPI starts a singleton world
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--seq-len", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "error: the zigzag layout needs --seq-len divisible by" in result.stderr
    assert "Traceback" not in result.stderr


# --- no NaN from finite inputs under any mask ---------------------------------------


def _huge(rng):
    big = [1e4 * rng.standard_normal(a.shape) for a in (q, k, v)]
    mask = rng.random((2, 1, 4, 8)) > 0.5
    mask[0, 0, 1] = False  # a query that sees no key
    return big, mask


@pytest.mark.parametrize("causal, align", [(False, "top_left"), (True, "bottom_right")])
def test_huge_inputs_under_a_mask_give_no_nan(rng, causal, align):
    (bq, bk, bv), mask = _huge(rng)
    options = {"causal": causal, "align": align}
    runs = [
        (eff.block_attention_forward, eff.block_attention_backward, {}),
        (par.ring_attention_forward, par.ring_attention_backward, {"n_ranks": 2}),
        (par.ulysses_attention_forward, par.ulysses_attention_backward, {"n_ranks": 3}),
    ]
    for forward, backward, extra in runs:
        out, cache = forward(bq, bk, bv, mask, **options, **extra)
        grads = backward(rng.standard_normal(out.shape), cache)
        assert np.all(np.isfinite(out)), forward.__name__
        assert all(np.all(np.isfinite(g)) for g in grads), forward.__name__


def test_merging_huge_partials_and_empty_rows_gives_no_nan(rng):
    lse_a = 1e4 * rng.standard_normal((2, 3, 4))
    lse_b = np.where(rng.random((2, 3, 4)) > 0.5, -np.inf, -1e4)
    o_b = np.where(np.isneginf(lse_b)[..., None], 0.0, O_A)
    lse_a[0, 0] = -np.inf  # rows where both blocks are empty
    lse_b[0, 0] = -np.inf
    for form in ("exp", "sigmoid"):
        merged, cache = par.merge_partials_forward(O_A, lse_a, o_b, lse_b, form=form)
        dout = par.Partial(
            rng.standard_normal(O_A.shape), rng.standard_normal(lse_a.shape)
        )
        grads = par.merge_partials_backward(dout, cache)
        assert np.all(np.isfinite(merged.out))
        assert all(np.all(np.isfinite(g)) for g in grads)
