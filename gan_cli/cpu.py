"""How many CPU threads a training process takes (trainer.threads).

torch's default (one thread per physical core) is right for a process alone on a machine. Two
processes that each take every core run far slower than half speed (measured on a 2-core machine,
DCGAN-32: 17.6 s alone, 66 s each for two at once, 31-33 s each with one thread apiece), because
their OpenMP threads spin and preempt each other. gan-cli knows the processes it started itself on
one machine: torchrun's local ranks and a joblib sweep's parallel jobs. It shares the CPUs among
them and leaves room for the DataLoader workers of a streamed data set.
"""

from __future__ import annotations

import os
from pathlib import Path

_torch_default: int | None = None  # torch's own thread count before gan-cli changed it


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota
    (containers, SLURM jobs) and by torch's default (physical cores: hyperthreads add no speed to
    matrix kernels)."""
    global _torch_default
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if _torch_default is None and not os.environ.get("OMP_NUM_THREADS"):
        import torch

        _torch_default = torch.get_num_threads()
    if _torch_default:
        cpus = min(cpus, _torch_default)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def parallel_jobs(launcher: dict | None, cpus: int) -> int:
    """How many jobs of a sweep run at once on this machine, from the Hydra launcher's config:
    joblib's n_jobs (-1: one per CPU, -k: cpus + 1 - k); 1 for every other launcher."""
    if not launcher or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = int(launcher.get("n_jobs") or 1)
    return max(1, n if n > 0 else cpus + 1 + n)


def auto_threads(
    requested: int, local_processes: int, loader_workers: int, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """(threads, why) for this process. `requested` > 0 wins; else an explicit OMP_NUM_THREADS
    (except torchrun's default of 1, which it asks users to tune); else the available CPUs divided
    among `local_processes`, less `loader_workers` busy decoding, at least 1."""
    env = os.environ if env is None else env
    if requested > 0:
        return requested, "trainer.threads"
    under_torchrun = "LOCAL_WORLD_SIZE" in env
    if env.get("OMP_NUM_THREADS") and not under_torchrun:
        try:
            return max(1, int(env["OMP_NUM_THREADS"])), "OMP_NUM_THREADS"
        except ValueError:
            pass
    cpus = available_cpus()
    share = max(1, cpus // max(1, local_processes))
    threads = max(1, share - loader_workers)
    why = f"auto: {cpus} CPUs / {local_processes} process{'es' if local_processes > 1 else ''}"
    if loader_workers:
        why += f" - {loader_workers} data workers"
    return threads, why
