"""Per-stage wall time and peak memory, and facts about the host, for reproducible benchmarks.

Peak memory per stage: when ``/proc/self/clear_refs`` accepts "5" the kernel's high-water mark
VmHWM is reset at the start of the stage, so VmHWM at its end is the peak resident set during
that stage (method "vmhwm-reset"). Otherwise the stage reports VmRSS before/after and the peak
of Python/NumPy allocations traced by tracemalloc (method "rss+tracemalloc").
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
from contextlib import contextmanager
from importlib import metadata


def read_status_kib(field: str) -> int:
    """A ``Vm*`` field of /proc/self/status in KiB (0 when unavailable)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class StageMeter:
    """Collects {stage: {seconds, cpu_seconds, rss_start_mib, peak_rss_mib, peak_delta_mib, method}}.

    ``cpu_seconds`` is process CPU time over all threads: on a shared, loaded host it shows how
    much work the stage needed independently of how long it waited for a core.
    """

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    @contextmanager
    def stage(self, name: str):
        rss_start = read_status_kib("VmRSS")
        resettable = reset_peak()
        if not resettable:
            tracemalloc.start()
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
            if resettable:
                peak = read_status_kib("VmHWM")
                method = "vmhwm-reset"
            else:
                traced_peak = tracemalloc.get_traced_memory()[1] // 1024
                tracemalloc.stop()
                peak = max(read_status_kib("VmRSS"), rss_start + traced_peak)
                method = "rss+tracemalloc"
            self.stages[name] = {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "rss_start_mib": rss_start / 1024,
                "peak_rss_mib": peak / 1024,
                "peak_delta_mib": max(0, peak - rss_start) / 1024,
                "method": method,
            }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def host_facts() -> dict:
    """CPU model, core count, memory, load and library versions of this machine."""
    cpu_model = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu_model)
    except OSError:
        pass
    mem_total_kib = 0
    try:
        with open("/proc/meminfo") as info:
            mem_total_kib = int(next(ln.split()[1] for ln in info if ln.startswith("MemTotal")))
    except (OSError, StopIteration):
        pass
    return {
        "cpu_model": cpu_model,
        "cpu_cores": os.cpu_count(),
        "memory_total_mib": mem_total_kib / 1024,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "numba": _version("numba"),
        "ducc0": _version("ducc0"),
        "peak_memory_method": "vmhwm-reset" if reset_peak() else "rss+tracemalloc",
    }

