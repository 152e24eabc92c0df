"""Helper for no-synchronisation tests: a dispatch mode that sees every op handing a value to the host."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Scalar reads (.item(), bool(t), float(t) all end in _local_scalar_dense) and ops whose output size
# depends on the data (each a host synchronisation on a GPU).
READ_OPS = (
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.nonzero.default,
    torch.ops.aten.masked_select.default,
)


def is_host_read(func, args) -> bool:
    """Whether the op ``func(*args)`` reads a tensor's value on the host."""
    if func in READ_OPS:
        return True
    # theta[mask]: the output size is the mask's count (the kernel calls nonzero below the dispatcher).
    return func is torch.ops.aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1])


class HostReads(TorchDispatchMode):
    """Records each host read as ``(op, the tensor read)`` in ``reads``; with ``refuse``, raises at the read."""

    def __init__(self, refuse: bool = False):
        super().__init__()
        self.refuse = refuse
        self.reads: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if is_host_read(func, args):
            if self.refuse:
                raise AssertionError(f"host read in a step: {func}")
            self.reads.append((func, args[0]))
        return func(*args, **(kwargs or {}))
