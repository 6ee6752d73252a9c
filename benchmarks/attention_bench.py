"""Time attention_forward / attention_backward against the BLAS floor.

The "BLAS floor" is the time of just the matrix products the computation needs
(forward: q k^T and P v; backward: P^T dO, dO v^T, dS k and dS^T q) on arrays of the
same shapes and dtype. The ratio ours / floor says how much the element-wise softmax
work, masking and bookkeeping cost on top of the unavoidable products.

    python benchmarks/attention_bench.py [--sizes 256 512 1024 2048] [--repeats 7]

Prints a Markdown table (medians of the repeats, all measured in this one run); a
torch SDPA column appears when torch is importable.
"""

import argparse
import platform
import time

import numpy as np

from attention_np import attention_backward, attention_forward, causal_mask

try:
    import torch
except ImportError:  # the column is optional
    torch = None


def median_time(fn, repeats):
    fn()  # warm-up: first-touch page faults, BLAS thread start-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def blas_floor(q, k, v, dout):
    kt, vt = np.swapaxes(k, -1, -2), np.swapaxes(v, -1, -2)

    def forward():
        s = q @ kt  # (B, H, N, M)
        return s, s @ v

    def forward_backward():
        s, _ = forward()
        np.swapaxes(s, -1, -2) @ dout  # dv
        dp = dout @ vt  # (B, H, N, M)
        dp @ k  # dq
        np.swapaxes(dp, -1, -2) @ q  # dk

    return forward, forward_backward


def ours(q, k, v, dout, mask):
    def forward():
        return attention_forward(q, k, v, mask, causal=False)

    def forward_backward():
        _, cache = attention_forward(q, k, v, mask, causal=False)
        attention_backward(dout, cache)

    return forward, forward_backward


def torch_sdpa(q, k, v, dout, causal):
    tq, tk, tv, tdo = (torch.from_numpy(a.copy()) for a in (q, k, v, dout))
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(tq, tk, tv, is_causal=causal)

    def forward_backward():
        a, b, c = (t.detach().requires_grad_() for t in (tq, tk, tv))
        sdpa(a, b, c, is_causal=causal).backward(tdo)

    return forward, forward_backward


def run(sizes, repeats, B=1, H=8, d=64):
    rng = np.random.default_rng(0)
    rows = []
    for dtype in (np.float32, np.float64):
        for causal in (False, True):
            for N in sizes:
                q, k, v, dout = (
                    rng.standard_normal((B, H, N, d)).astype(dtype) for _ in range(4)
                )
                mask = causal_mask(N) if causal else None
                f_ours, fb_ours = ours(q, k, v, dout, mask)
                f_floor, fb_floor = blas_floor(q, k, v, dout)
                row = {
                    "dtype": np.dtype(dtype).name,
                    "causal": causal,
                    "N": N,
                    "fwd": median_time(f_ours, repeats),
                    "fwd_floor": median_time(f_floor, repeats),
                    "fb": median_time(fb_ours, repeats),
                    "fb_floor": median_time(fb_floor, repeats),
                }
                if torch is not None:
                    f_t, fb_t = torch_sdpa(q, k, v, dout, causal)
                    row["fwd_torch"] = median_time(f_t, repeats)
                    row["fb_torch"] = median_time(fb_t, repeats)
                rows.append(row)
    return rows


def print_table(rows, repeats):
    has_torch = "fwd_torch" in rows[0]
    print(
        f"B=1, H=8, d=64; medians of {repeats} repeats; times in ms; "
        f"numpy {np.__version__}; {platform.processor() or platform.machine()}"
    )
    head = "dtype causal N fwd floor ratio fwd+bwd floor ratio".split()
    head += ["torch fwd", "torch fwd+bwd"] if has_torch else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [
            r["dtype"],
            "yes" if r["causal"] else "no",
            str(r["N"]),
            f"{r['fwd'] * 1e3:.1f}",
            f"{r['fwd_floor'] * 1e3:.1f}",
            f"{r['fwd'] / r['fwd_floor']:.2f}",
            f"{r['fb'] * 1e3:.1f}",
            f"{r['fb_floor'] * 1e3:.1f}",
            f"{r['fb'] / r['fb_floor']:.2f}",
        ]
        if has_torch:
            cells += [f"{r['fwd_torch'] * 1e3:.1f}", f"{r['fb_torch'] * 1e3:.1f}"]
        print("| " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print_table(run(args.sizes, args.repeats), args.repeats)


if __name__ == "__main__":
    main()
