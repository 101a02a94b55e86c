"""One GPU per pytest-xdist worker, and its share of the CPU cores.

`pytest -n N --dist loadgroup` groups each model's tests on one worker (scheduling.py;
the xdist_group mark per model says the same to older pytest), so a model loads once; pinning worker k to GPU k mod G
(CUDA_VISIBLE_DEVICES, set before torch initialises CUDA) spreads models over GPUs.
A user who sets CUDA_VISIBLE_DEVICES keeps control.

CPU threads: every worker's torch would otherwise start one thread per core, so N workers
run N x cores threads that spin against each other (OpenMP's threads busy-wait between
parallel regions): the calibration workers ran two to three times slower that way. Each
worker gets cores // N threads and a passive wait policy, unless the user set
OMP_NUM_THREADS (docs/performance.md has the measurement).
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


def share_cpu_threads(workercount: int, environ: Optional[dict] = None, cores: Optional[int] = None) -> Optional[int]:
    """Give an xdist worker its share of the cores: OMP_NUM_THREADS in `environ` (default: this
    process's environment, where torch's intra-op threads follow too if torch is already
    imported); returns the threads set (None: left alone)."""
    import sys

    process = environ is None
    environ = os.environ if process else environ
    if "OMP_NUM_THREADS" in environ or workercount <= 1:
        return None
    threads = max(1, (cores or os.cpu_count() or 1) // workercount)
    environ["OMP_NUM_THREADS"] = str(threads)
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch = sys.modules.get("torch") if process else None
    if torch is not None:
        torch.set_num_threads(threads)
    return threads
