"""One GPU per pytest-xdist worker.

`pytest -n N --dist loadgroup` groups each model's tests on one worker (scheduling.py;
the xdist_group mark per model says the same to older pytest), so a model loads once; pinning worker k to GPU k mod G
(CUDA_VISIBLE_DEVICES, set before torch initialises CUDA) spreads models over GPUs.
A user who sets CUDA_VISIBLE_DEVICES keeps control.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Optional


def gpu_count() -> int:
    """GPUs visible to nvidia-smi (0 without an NVIDIA driver); never initialises CUDA."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def worker_index(workerid: str) -> Optional[int]:
    match = re.fullmatch(r"gw(\d+)", workerid or "")
    return int(match.group(1)) if match else None


def pin_worker_gpu(workerid: str, environ=os.environ, count: Optional[int] = None) -> Optional[str]:
    """Set CUDA_VISIBLE_DEVICES for an xdist worker; returns the value set (None: left alone)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return None
    index = worker_index(workerid)
    n = gpu_count() if count is None else count
    if index is None or n == 0:
        return None
    environ["CUDA_VISIBLE_DEVICES"] = str(index % n)
    return environ["CUDA_VISIBLE_DEVICES"]
