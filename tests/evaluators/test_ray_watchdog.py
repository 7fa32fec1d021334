"""A local Ray instance never outlives its driver: after a kill -9 of the driver, the watchdog kills what
it left (Ray's agents would otherwise linger for over a minute)."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from einsearch.evaluators import ray_watchdog

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the watchdog reads /proc (Linux)")

# A driver that leaves an orphan behind when killed: a child in its own session (so it gets no signal),
# which itself has a child, as the raylet has its agents.
DRIVER = textwrap.dedent("""
    import importlib.util, subprocess, sys, time
    spec = importlib.util.spec_from_file_location("ray_watchdog", sys.argv[1] + "/einsearch/evaluators/ray_watchdog.py")
    ray_watchdog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ray_watchdog)  # by path: no torch import, a quick start
    child = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
    watchdog = ray_watchdog.watch()
    time.sleep(3 * ray_watchdog.INTERVAL)
    print("READY", flush=True)
    time.sleep(300)
""")

RAY_DRIVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from einsearch.evaluators.executor_ray import RayExecutor
    executor = RayExecutor(workers=1, num_cpus=1, device="cpu")
    time.sleep(2)
    print("READY", flush=True)
    time.sleep(300)
""")


def _alive(recorded: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in recorded.items() if (ray_watchdog._stat(pid) or (0, None))[1] == start}


def _start(script: str, tmp_path: Path, timeout: float) -> subprocess.Popen:
    path = tmp_path / "driver.py"
    path.write_text(script)
    root = str(Path(ray_watchdog.__file__).parents[2])
    driver = subprocess.Popen([sys.executable, str(path), root], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=tmp_path)
    ready, _, _ = select.select([driver.stdout], [], [], timeout)
    line = driver.stdout.readline() if ready else ""
    if line.strip() != "READY":
        driver.kill()
        pytest.fail(f"the driver did not start within {timeout} s")
    return driver


def _kill_and_wait(driver: subprocess.Popen, left: dict[int, int], within: float) -> float:
    started = time.monotonic()
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    while _alive(left) and time.monotonic() - started < within:
        time.sleep(0.1)
    return time.monotonic() - started


def test_orphans_of_a_killed_driver_are_killed(tmp_path):
    driver = _start(DRIVER, tmp_path, timeout=30)
    left = ray_watchdog.descendants(driver.pid)
    watchdogs = {pid for pid in left if "ray_watchdog" in Path(f"/proc/{pid}/cmdline").read_text()}
    assert len(watchdogs) == 1 and len(left) >= 4  # the watchdog, bash and its two sleeps
    others = {pid: start for pid, start in left.items() if pid not in watchdogs}
    try:
        took = _kill_and_wait(driver, others, within=10)
        assert not _alive(others), "processes outlived their driver"
        assert took < 5  # it looks every INTERVAL seconds (Ray's own agents take over a minute)
    finally:
        ray_watchdog.kill_recorded(left)


def test_watchdog_of_a_living_driver_is_stopped_cleanly():
    watchdog = ray_watchdog.watch()
    assert watchdog is not None and watchdog.poll() is None
    ray_watchdog.stop(watchdog)
    assert watchdog.returncode is not None


def test_watchdog_for_a_dead_pid_exits_at_once():
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert ray_watchdog.run(dead.pid) == 0


def test_local_ray_does_not_outlive_a_killed_driver(tmp_path):
    pytest.importorskip("ray")
    driver = _start(RAY_DRIVER, tmp_path, timeout=120)
    left = ray_watchdog.descendants(driver.pid)
    names = {Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0] for pid in left}
    assert any("raylet" in n for n in names) and any("Agent" in n for n in names), names
    try:
        _kill_and_wait(driver, left, within=15)
        assert not _alive(left), [Path(f"/proc/{p}/cmdline").read_text()[:80] for p in _alive(left)]
    finally:
        ray_watchdog.kill_recorded(left)
