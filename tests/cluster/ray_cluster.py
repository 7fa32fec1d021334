"""A real multi-node Ray cluster on this machine, for tests and benchmarks: a head and more nodes,
each its own `ray start --block` process (separate raylets, `--num-cpus` each), torn down by pid.

Never `ray stop`: it kills every Ray on the machine, other users' included.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
# Fast failure detection: a dead raylet is declared dead after about 1.5 s instead of 15-30 s.
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
               "RAY_health_check_failure_threshold": "3", "RAY_AUTH_MODE": "disabled",
               "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, **FAST_HEALTH, "PYTHONPATH": str(ROOT)}


def children(pid: int) -> list[int]:
    """Every descendant process of `pid` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class RayCluster:
    """`RayCluster(nodes=2).start()`: `address` to join; `raylet_pid(i)` of node i; `stop()` always."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        self.nodes, self.cpus = nodes, cpus_per_node
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="einsearch-ray-"))
        self.procs: list[subprocess.Popen] = []

    def _start_node(self, head: bool, log: Path) -> subprocess.Popen:
        command = [str(RAY), "start", "--block", "--num-cpus", str(self.cpus), "--num-gpus", "0",
                   "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--temp-dir", str(self.temp)]
        command += (["--head", "--port", str(self.port), "--include-dashboard", "false"] if head
                    else ["--address", self.address])
        return subprocess.Popen(command, env=env(), stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start(self, timeout: float = 120) -> "RayCluster":
        try:
            for i in range(self.nodes):
                self.procs.append(self._start_node(i == 0, self.temp / f"node{i}.log"))
                self.wait_nodes(i + 1, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def alive_nodes(self) -> int:
        probe = ("import ray, logging; ray.init(address=%r, logging_level=logging.ERROR, log_to_driver=False); "
                 "print(sum(n['Alive'] for n in ray.nodes()))" % self.address)
        done = subprocess.run([sys.executable, "-c", probe], env=env(), capture_output=True, text=True, timeout=120)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0

    def wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise RuntimeError(f"ray node {i} exited: {(self.temp / f'node{i}.log').read_text()[-500:]}")
            if self.raylet_pid(count - 1) is not None and self.alive_nodes() >= count:
                return
            time.sleep(1)
        raise RuntimeError(f"ray cluster: {count} node(s) not up within {timeout:.0f} s")

    def raylet_pid(self, node: int) -> int | None:
        found = [pid for pid in children(self.procs[node].pid) if process_name(pid) == "raylet"]
        return found[0] if found else None

    def kill_raylet(self, node: int) -> int:
        pid = self.raylet_pid(node)
        if pid is None:
            raise RuntimeError(f"node {node} has no raylet")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Every process this cluster started: `ray start` ends its own children on SIGTERM; then the
        sessions' leftovers by pid."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the node's own session (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
