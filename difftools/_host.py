"""Whether reading a tensor's value on the host is free on its device (the CPU) or a synchronisation."""

from __future__ import annotations

import torch


def reads_are_free(device: torch.device | str | None) -> bool:
    """True on the CPU, where ``.item()``, ``nonzero`` or boolean indexing read memory and wait for nothing.

    On an accelerator each of those waits for every queued kernel (a host synchronisation), so code
    that branches on a tensor's value does so only where this is True and keeps a data-independent
    path for other devices. The one switch tests flip to run the accelerator path on the CPU.
    """
    return torch.device(device or "cpu").type == "cpu"
