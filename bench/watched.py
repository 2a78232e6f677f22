"""Run a command in a fresh process and sample its peak RSS: the benches' one way to measure a
child's time and memory (bench/transform.py's dbt runs, bench/audit_pack.py's pack)."""

from __future__ import annotations

import subprocess
import time

import psutil


def run_watched(cmd: list[str], **popen) -> tuple[float, int, subprocess.Popen]:
    """(seconds, peak RSS in MB, the finished process); ``popen`` goes to ``subprocess.Popen``
    (its output is the caller's: read ``proc.stdout`` only through ``communicate``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, **popen)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return time.perf_counter() - started, peak // (1024 * 1024), proc


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB (VmHWM): what a bench's fresh child process reports of
    itself. Not ru_maxrss: Linux carries that across execve, so a spawned child would report
    at least its parent's peak."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
