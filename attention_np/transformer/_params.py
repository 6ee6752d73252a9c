"""Flat parameter dicts with prefixed keys ("block0.attn.W_q"): take apart, put back."""


def sub(params, prefix):
    """The entries of ``params`` under ``prefix.``, with the prefix removed."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in params.items() if k.startswith(head)}


def prefixed(grads, prefix):
    """``grads`` with ``prefix.`` put in front of every key."""
    return {f"{prefix}.{k}": v for k, v in grads.items()}


def check_keys(params, expected, name="params"):
    """Raise ValueError naming the missing and unexpected keys, if any."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict, got {type(params).__name__}")
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"{name}: missing keys {missing}, unexpected keys {extra}")
