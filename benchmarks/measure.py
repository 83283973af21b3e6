"""Run a command and measure it: wall time, exit code, peak RSS (psutil polling of the whole
process tree, and GNU time's maximum resident set size when /usr/bin/time is there)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # peak RSS then comes from /usr/bin/time only
    psutil = None

GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else shutil.which("gtime")
MIB = 1024 * 1024


class RssSampler:
    """Peak of the summed RSS of a process and its descendants, polled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.05, kill_above: int | None = None):
        self.pid, self.interval, self.peak, self.peak_at = pid, interval, 0, None
        self.kill_above, self.killed = kill_above, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        if psutil is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        if total > self.peak:
            self.peak, self.peak_at = total, time.time()
        if self.kill_above and total > self.kill_above and not self.killed:
            # Past the memory cap: stop the run we started (its own process group) before the
            # kernel's OOM killer picks something on a shared machine.
            self.killed = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @property
    def peak_mib(self) -> float | None:
        return round(self.peak / MIB, 1) if psutil is not None and self.peak else None


def _gnu_time(path: Path) -> dict:
    out: dict = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for label, name, conv in (
        ("Maximum resident set size (kbytes)", "max_rss_mib", lambda v: round(int(v) / 1024, 1)),
        ("User time (seconds)", "user_s", float),
        ("System time (seconds)", "sys_s", float),
    ):
        m = re.search(re.escape(label) + r":\s*([\d.]+)", text)
        if m:
            out[name] = conv(m.group(1))
    return out


def default_memory_cap() -> int | None:
    """85% of the machine's memory, in bytes (None without psutil)."""
    return int(psutil.virtual_memory().total * 0.85) if psutil is not None else None


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | None = None,
                 log: Path, timeout: float = 1500, memory_cap: int | None = -1) -> dict:
    """Run `cmd` (stdout+stderr to `log`) in its own session; kill its process group after
    `timeout` seconds or when its tree's RSS passes `memory_cap` bytes (-1: 85% of RAM; None:
    no cap). Returns wall_s, exit_code, timed_out, memory_killed, peak_rss_mib, max_rss_mib..."""
    if memory_cap == -1:
        memory_cap = default_memory_cap()
    log.parent.mkdir(parents=True, exist_ok=True)
    time_file = log.with_suffix(".time")
    full = [GNU_TIME, "-v", "-o", str(time_file), *cmd] if GNU_TIME else list(cmd)
    timed_out = False
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        with RssSampler(proc.pid, kill_above=memory_cap) as sampler:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the process we started
                proc.wait()
        wall = time.perf_counter() - t0
    result = {"wall_s": round(wall, 3), "exit_code": proc.returncode, "timed_out": timed_out,
              "memory_killed": sampler.killed,
              "memory_cap_mib": round(memory_cap / MIB) if memory_cap else None,
              "peak_rss_mib": sampler.peak_mib, "peak_rss_at": sampler.peak_at}
    if GNU_TIME:
        result.update(_gnu_time(time_file))
    return result


def peak_mib(result: dict) -> float | None:
    """The larger of the two peak RSS readings (GNU time sees the biggest single process,
    the sampler the sum over the tree but may miss a short spike)."""
    values = [v for v in (result.get("peak_rss_mib"), result.get("max_rss_mib")) if v]
    return max(values) if values else None
