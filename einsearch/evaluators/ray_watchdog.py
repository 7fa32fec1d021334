"""A local Ray instance never outlives its driver.

`ray.init()` starts its GCS server and raylet bound to the driver (they get SIGKILL when it dies), but
the processes the raylet starts (dashboard agent, runtime-env agent, workers) only notice their
raylet's death, then spend a hard-coded 60 s trying to report it to the dead GCS: after a `kill -9`
of the driver they linger for a minute or more. No Ray option shortens that, so the driver starts
this watchdog (`watch(pid)`): a small separate process, in its own session, that records the
driver's descendants every `INTERVAL` seconds and SIGKILLs every recorded one still alive (same
start time, so a reused pid is never hit) as soon as the driver is gone. Linux only (/proc); it
imports nothing but the standard library, so it starts in milliseconds.

Run as a script: `python ray_watchdog.py DRIVER_PID`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

INTERVAL = 0.5  # seconds between looks at the driver and its process tree


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ..., starttime
    if fields[0] in ("Z", "X"):  # a zombie is as good as gone
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process below `root`."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append(int(entry.name))
                started[int(entry.name)] = found[1]
    out: dict[int, int] = {}
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if pid not in out and pid in started:
            out[pid] = started[pid]
            stack.extend(children.get(pid, ()))
    return out


def kill_recorded(recorded: dict[int, int]) -> int:
    """SIGKILL each recorded process that is still the same process; returns how many."""
    killed = 0
    for pid, start in recorded.items():
        found = _stat(pid)
        if found is not None and found[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def run(driver: int) -> int:
    """Watch `driver` until it is gone, then kill what it left; returns how many processes that was."""
    me = os.getpid()
    first = _stat(driver)
    if first is None:
        return 0
    recorded: dict[int, int] = {}
    while True:
        now = _stat(driver)
        if now is None or now[1] != first[1]:
            return kill_recorded(recorded)
        seen = descendants(driver)
        seen.pop(me, None)
        recorded.update(seen)  # keep the dead too: a process orphaned since the last look is still ours
        recorded = {pid: start for pid, start in recorded.items() if pid in seen or _stat(pid) is not None}
        time.sleep(INTERVAL)


def watch(driver: int | None = None) -> subprocess.Popen | None:
    """Start the watchdog for `driver` (default: this process); None where /proc is missing."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen([sys.executable, "-S", "-I", __file__, str(driver or os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def stop(process: subprocess.Popen | None) -> None:
    """Stop a watchdog (the driver shut Ray down itself)."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


if __name__ == "__main__":
    run(int(sys.argv[1]))
