"""Memory and adaptation: attention read as fast, input-dependent memory.

Modules (one idea each):
- ``fast_weights``: Ba et al. (2016) fast-weights RNN; its memory is decayed attention.
- ``delta_rule``: linear transformers as fast-weight programmers (sum and delta rules).
- ``delta_rule_chunkwise``: DeltaNet's chunkwise (UT / WY) form of the delta rule.
- ``ttt_inner``: TTT's inner loss 1/2 ||LN(x W + b) - t||^2 and its gradient.
- ``ttt_linear``: TTT-Linear, mini-batch TTT, primal and dual forms, outer backward.
- ``ttt_decode``: TTT-Linear one token at a time.
- ``inplace_ttt``: In-Place TTT, the MLP's down projection as fast weights.
- ``chunk_conv``: chunking and In-Place TTT's chunk-local depthwise convolution.
- ``inplace_ttt_parallel``: In-Place TTT with context parallelism (simulated, or
  mpi4py); ``python -m attention_np.memory.inplace_ttt_cp`` checks it over MPI.
- ``memnet``: end-to-end memory networks, K hops, adjacent weight tying.
- ``ntm``: Neural Turing Machine addressing, read and write.
- ``tasks``: small synthetic tasks for the notebooks.
"""

from .delta_rule import (
    delta_rule_backward,
    delta_rule_forward,
    sum_rule_backward,
    sum_rule_forward,
)
from .delta_rule_chunkwise import (
    delta_rule_chunkwise_backward,
    delta_rule_chunkwise_forward,
    ut_transform,
)
from .fast_weights import (
    fast_weight_attention_matrix,
    fast_weight_read,
    fast_weight_read_attention,
    fast_weight_update,
    fast_weights_backward,
    fast_weights_forward,
    init_fast_weights_params,
)
from .inplace_ttt import (
    init_inplace_ttt_params,
    inplace_ttt_backward,
    inplace_ttt_forward,
)
from .inplace_ttt_parallel import (
    inplace_ttt_context_parallel,
    inplace_ttt_mpi_forward,
    shard_positions,
)
from .memnet import (
    init_memnet_params,
    memnet_backward,
    memnet_forward,
    position_encoding,
)
from .ntm import (
    ntm_address_backward,
    ntm_address_forward,
    ntm_read_backward,
    ntm_read_forward,
    ntm_write_backward,
    ntm_write_forward,
)
from .ttt_decode import ttt_linear_decode_init, ttt_linear_decode_step
from .ttt_inner import ln_l2_grad_backward, ln_l2_grad_forward, ln_l2_loss
from .ttt_linear import (
    init_ttt_linear_params,
    ttt_linear_backward,
    ttt_linear_forward,
)

__all__ = [
    "delta_rule_backward",
    "delta_rule_chunkwise_backward",
    "delta_rule_chunkwise_forward",
    "delta_rule_forward",
    "fast_weight_attention_matrix",
    "fast_weight_read",
    "fast_weight_read_attention",
    "fast_weight_update",
    "fast_weights_backward",
    "fast_weights_forward",
    "init_fast_weights_params",
    "init_inplace_ttt_params",
    "init_memnet_params",
    "init_ttt_linear_params",
    "inplace_ttt_backward",
    "inplace_ttt_context_parallel",
    "inplace_ttt_forward",
    "inplace_ttt_mpi_forward",
    "ln_l2_grad_backward",
    "ln_l2_grad_forward",
    "ln_l2_loss",
    "memnet_backward",
    "memnet_forward",
    "ntm_address_backward",
    "ntm_address_forward",
    "ntm_read_backward",
    "ntm_read_forward",
    "ntm_write_backward",
    "ntm_write_forward",
    "position_encoding",
    "shard_positions",
    "sum_rule_backward",
    "sum_rule_forward",
    "ttt_linear_backward",
    "ttt_linear_decode_init",
    "ttt_linear_decode_step",
    "ttt_linear_forward",
    "ut_transform",
]
