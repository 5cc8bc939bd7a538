"""RetainHeap: glibc keeps freed memory mapped on CPU runs, so a step's large tensors stop page-faulting."""

import ctypes
import platform
import resource

import pytest
import torch

from nlp_lib.tasks import cpu_heap
from nlp_lib.tasks.cpu_heap import RetainHeap, retain_heap

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def _faults_of_reallocating(mb: int, times: int) -> int:
    """Minor page faults of allocating, touching and freeing an ``mb``-MB tensor ``times`` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(mb * 2**18)  # float32: mb MB, every page written
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_after_retain_heap_a_reallocated_tensor_reuses_its_pages(monkeypatch):
    for name in cpu_heap._USER_CHOICE + ("LD_PRELOAD",):
        monkeypatch.delenv(name, raising=False)
    libc = ctypes.CDLL("libc.so.6")
    try:
        libc.mallopt(cpu_heap._M_MMAP_THRESHOLD, 128 * 1024)  # glibc's initial setting: 20 MB is mmapped
        libc.mallopt(cpu_heap._M_TRIM_THRESHOLD, 128 * 1024)
        unmapped = _faults_of_reallocating(20, 10)
        assert unmapped > 10 * 20 * 256 * 0.9  # each time: one fault per 4 KB page
        assert retain_heap()
        _faults_of_reallocating(20, 1)  # the first one maps the heap's pages
        retained = _faults_of_reallocating(20, 10)
        assert retained < unmapped / 5
        assert retain_heap(mmap_threshold=2**40, trim_threshold=2**33)  # beyond glibc's caps: capped, not refused
    finally:  # glibc's defaults again (fixed thresholds, not its dynamic ones)
        libc.mallopt(cpu_heap._M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(cpu_heap._M_TRIM_THRESHOLD, 128 * 1024)


def test_a_user_chosen_allocator_is_left_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_heap.ctypes, "CDLL", lambda *a: calls.append(a))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert retain_heap() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert retain_heap() is False
    assert calls == []


def test_the_callback_applies_on_cpu_only(monkeypatch):
    seen = []
    monkeypatch.setattr(cpu_heap, "retain_heap", lambda *a: seen.append(a) or True)

    class Trainer:  # what setup reads
        def __init__(self, device):
            self.strategy = type("S", (), {"root_device": torch.device(device)})()

    gpu, cpu = RetainHeap(), RetainHeap(mmap_threshold=2**20, trim_threshold=2**28)
    gpu.setup(Trainer("cuda"), None, "fit")
    assert seen == [] and not gpu.applied
    cpu.setup(Trainer("cpu"), None, "fit")
    cpu.setup(Trainer("cpu"), None, "validate")  # once per process is enough
    assert seen == [(2**20, 2**28)] and cpu.applied
