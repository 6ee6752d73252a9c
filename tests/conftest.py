import numpy as np
import pytest

from attention_np.gradcheck import numerical_grads

# all-different sizes so that a transposed axis cannot go unnoticed
B, H, N, M, D_HEAD, D_V = 2, 3, 4, 5, 6, 7


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def fd_check(forward, backward, inputs, rng, atol=1e-7, rtol=1e-6):
    """Assert backward == central finite differences, with a random upstream gradient.

    forward(dict) -> (out, cache); backward(dout, cache) -> dict keyed like inputs.
    """
    out, cache = forward(inputs)
    dout = rng.standard_normal(np.shape(out))
    analytic = backward(dout, cache)
    numeric = numerical_grads(lambda p: forward(p)[0], inputs, dout)
    assert set(analytic) == set(numeric)
    for name in numeric:
        np.testing.assert_allclose(
            analytic[name],
            numeric[name],
            atol=atol,
            rtol=rtol,
            err_msg=f"gradient of {name}",
        )
