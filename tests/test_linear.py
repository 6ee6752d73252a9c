import numpy as np
import pytest
from conftest import fd_check

from attention_np import linear_backward, linear_forward


def test_forward_is_x_at_W_plus_b(rng):
    x, W, b = (
        rng.standard_normal((2, 3, 4)),
        rng.standard_normal((4, 5)),
        rng.standard_normal(5),
    )
    out, _ = linear_forward(x, W, b)
    expected = np.einsum("bni,io->bno", x, W) + b
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_backward_matches_finite_differences(rng, bias):
    inputs = {"x": rng.standard_normal((2, 3, 4)), "W": rng.standard_normal((4, 5))}
    if bias:
        inputs["b"] = rng.standard_normal(5)

    def backward(dout, cache):
        dx, dW, db = linear_backward(dout, cache)
        return {"x": dx, "W": dW, **({"b": db} if bias else {})}

    fd_check(
        lambda p: linear_forward(p["x"], p["W"], p.get("b")), backward, inputs, rng
    )


def test_no_bias_gives_db_none(rng):
    out, cache = linear_forward(
        rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    )
    assert linear_backward(np.ones_like(out), cache)[2] is None


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_follows_input(dtype):
    x, W = np.ones((2, 3), dtype), np.ones((3, 4), dtype)
    assert linear_forward(x, W, np.zeros(4, dtype))[0].dtype == dtype
