"""Which torch device runs a model: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``; out-of-memory errors; GPU memory.

`resolve_device` is the one place a device name becomes a `torch.device`: the
API (`causalsr.load(device=...)`) and every command's ``--device`` go through
it, so an absent device gives the same one-line error everywhere.
"""
from __future__ import annotations

import re

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """`name` if it is one of DEVICE_NAMES' forms, else a one-line ValueError (nothing is probed)."""
    if not _DEVICE_PATTERN.fullmatch(name):
        raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return name


def mps_available() -> bool:
    """Whether an Apple-silicon GPU (MPS) can be used by this torch."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The device a name asks for; ``auto`` is CUDA if available, else MPS, else the CPU.

    Raises a one-line ValueError naming the problem when the device is absent
    ("cuda: no CUDA device on this machine") or the name is not a device.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = check_device_name(name.strip().lower())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{name}: no CUDA device on this machine (or this torch was built without CUDA)")
        device = torch.device(name)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                             f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
        return device
    if name == "mps" and not mps_available():
        raise ValueError(f"{name}: no MPS (Apple GPU) device on this machine")
    return torch.device(name)


def is_oom(e: BaseException) -> bool:
    """Whether `e` is an out-of-memory error of torch (CUDA, MPS or CPU allocator)."""
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def free_gpu_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (driver view, plus what torch's cache holds); None for other devices."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def release_cached_memory(device: torch.device) -> None:
    """Give torch's cached blocks back (after an out-of-memory error), where the device has a cache."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


__all__ = ["DEVICE_NAMES", "check_device_name", "resolve_device", "mps_available", "is_oom", "free_gpu_memory",
           "release_cached_memory"]
