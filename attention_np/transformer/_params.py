"""Flat parameter dicts with prefixed keys ("block0.attn.W_q"): take apart, put back."""


def sub(params, prefix):
    """The entries of ``params`` under ``prefix.``, with the prefix removed."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in params.items() if k.startswith(head)}


def prefixed(grads, prefix):
    """``grads`` with ``prefix.`` put in front of every key."""
    return {f"{prefix}.{k}": v for k, v in grads.items()}
