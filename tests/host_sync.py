"""A guard that fails on any device-to-host copy: what a per-level or per-step ``.item()`` would be.

On the CPU there is no device, so the guard stands in for one: for as long as it is active, the
tensor methods that bring values to the host (``item``, ``tolist``, ``bool()``, ``int()``,
``float()``, ``nonzero``, ``torch.equal``, ``.cpu()``) raise :class:`HostSyncError`, or (``count=True``)
are counted. With CUDA present, ``torch.cuda.set_sync_debug_mode("error")`` also turns every
synchronising CUDA call into an error. Build the inputs before entering it, as collate would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import torch

TRAPPED = [
    (torch.Tensor, "item"),
    (torch.Tensor, "tolist"),
    (torch.Tensor, "__bool__"),
    (torch.Tensor, "__int__"),
    (torch.Tensor, "__float__"),
    (torch.Tensor, "nonzero"),
    (torch.Tensor, "cpu"),
    (torch, "equal"),
    (torch, "nonzero"),
]


class HostSyncError(AssertionError):
    """A tensor's values were read on the host inside a guarded region."""


@contextlib.contextmanager
def no_host_sync(count: bool = False) -> Iterator[list[str]]:
    """Raise (or, with ``count``, record in the yielded list) on every host read of tensor values."""
    calls: list[str] = []

    def trap(owner: object, name: str):  # noqa: ANN202
        original = getattr(owner, name)
        label = f"{'torch' if owner is torch else 'Tensor'}.{name}"

        def guarded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if not count:
                raise HostSyncError(f"{label} read tensor values on the host inside a sweep (a device sync)")
            calls.append(label)
            return original(*args, **kwargs)

        return mock.patch.object(owner, name, guarded)

    with contextlib.ExitStack() as stack:
        for owner, name in TRAPPED:
            stack.enter_context(trap(owner, name))
        cuda = torch.cuda.is_available()
        if cuda and not count:
            torch.cuda.set_sync_debug_mode("error")
        try:
            yield calls
        finally:
            if cuda and not count:
                torch.cuda.set_sync_debug_mode(0)
