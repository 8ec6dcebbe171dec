"""Several processes, one run: the cluster a multi-host ``data_parallel`` run joins, read from
Keras' environment variables, checked before anything starts, and watched while it runs.

Every process of a run is started with the same command; three variables tell them apart:
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator ``host:port``, process 0's, or every
process's address with the coordinator first), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
``KERAS_DISTRIBUTION_PROCESS_ID``; ``HMS_DISTRIBUTED_TIMEOUT`` bounds, in seconds, how long a
process waits for the others to join and to leave.

JAX reports a coordinator it cannot reach, or a peer that stopped sending heartbeats, by
aborting the process from a C++ thread with a stack trace, which Python cannot catch. So a
process of a cluster runs its training in a child process (:func:`supervise`): the parent
passes the child's output on, and when the child dies it prints one line naming the
coordinator's address and the process. This module imports the standard library only, so
the parent stays light.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass

ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
TIMEOUT = "HMS_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT = 300  # JAX's own default for joining; hosts of a cluster start within it
# Set in the child that trains, so that it does not supervise itself again.
CHILD = "HMS_CLUSTER_CHILD"
# The lines JAX's C++ runtime logs (glog style: level, date, time, thread, file:line) and the
# stack trace of an abort: noise once a process is dying, summarised in one line instead.
_RUNTIME_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|\s+@\s+0x|\*\*\* )")


class ClusterError(ValueError):
    """A cluster that cannot start or went down: one line naming the address and process."""


@dataclass(frozen=True)
class Cluster:
    """One process's view of the cluster: the coordinator ``host:port`` (process 0 serves it),
    how many processes there are, which one this is, and the timeout in seconds."""

    coordinator: str
    processes: int
    process_id: int
    timeout: int = DEFAULT_TIMEOUT

    @property
    def host(self) -> str:
        return self.coordinator.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.coordinator.rsplit(":", 1)[1])

    def name(self) -> str:
        """How errors name this process."""
        return f"process {self.process_id} of {self.processes} (coordinator {self.coordinator})"

    def error(self, problem: str) -> ClusterError:
        return ClusterError(f"{self.name()}: {problem}")


def cluster_from_env(env: dict[str, str] | os._Environ = os.environ) -> Cluster | None:
    """The cluster the environment names, or None for one process (no variable, or 1
    process). A malformed or inconsistent setting is a :class:`ClusterError` naming it."""
    count = env.get(PROCESSES, "1").strip() or "1"
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"{PROCESSES}={count!r} must be a whole number of processes >= 1")
    if int(count) == 1:
        return None
    processes = int(count)
    pid = env.get(PROCESS_ID, "").strip()
    if not pid.isdigit() or int(pid) >= processes:
        raise ClusterError(
            f"{PROCESS_ID}={pid!r} must be this process's number, 0 to {processes - 1} "
            f"({PROCESSES}={processes})"
        )
    addresses = [a.strip() for a in env.get(ADDRESSES, "").split(",") if a.strip()]
    if not addresses:
        raise ClusterError(f"{ADDRESSES} must name the coordinator's host:port (process 0's)")
    if len(addresses) > 1 and len(addresses) != processes:
        raise ClusterError(
            f"{ADDRESSES} names {len(addresses)} addresses but {PROCESSES}={processes}: give "
            "one per process (the coordinator first), or the coordinator's alone"
        )
    coordinator = addresses[0]
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{ADDRESSES}: {coordinator!r} is not host:port (e.g. 10.0.0.1:1234)")
    timeout = env.get(TIMEOUT, str(DEFAULT_TIMEOUT)).strip()
    if not timeout.isdigit() or int(timeout) < 1:
        raise ClusterError(f"{TIMEOUT}={timeout!r} must be a whole number of seconds >= 1")
    return Cluster(coordinator, processes, int(pid), int(timeout))


def check_reachable(cluster: Cluster) -> None:
    """Before JAX starts: process 0 can serve the coordinator's port, every other process can
    reach it within the timeout. JAX would find both out later, by aborting."""
    if cluster.process_id == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # JAX's service binds every interface ([::]:port); a listener on any of them
            # holds the port on 0.0.0.0 too.
            try:
                probe.bind(("0.0.0.0", cluster.port))
            except OSError as exc:
                raise cluster.error(
                    f"port {cluster.port} is in use on this host ({exc.strerror}); choose a "
                    "free port for the coordinator"
                ) from None
        return
    deadline = time.monotonic() + cluster.timeout
    while True:
        try:
            socket.create_connection((cluster.host, cluster.port), timeout=5).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise cluster.error(
                    f"cannot reach the coordinator within {cluster.timeout} s "
                    f"({exc.strerror or exc}); is process 0 started, and is the address "
                    "process 0's?"
                ) from None
            time.sleep(0.5)


def supervise(cluster: Cluster, command: list[str]) -> int:
    """Run ``command`` (this process's training) as a child and return its exit code. Its
    output passes through, except the runtime's log lines; a child that dies without its own
    ``error:`` line gets one from here, naming the coordinator and this process."""
    child = subprocess.Popen(
        command,
        env={**os.environ, CHILD: "1"},
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert child.stderr is not None
    dying, own_error, tail = False, False, deque(maxlen=400)
    for line in child.stderr:
        tail.append(line)
        # After the runtime's first error line, the rest is its report of the same failure.
        dying = dying or bool(re.match(r"^[EF]\d{4} ", line))
        own_error = own_error or line.startswith("error: ")
        if not dying and not _RUNTIME_LOG.match(line):
            sys.stderr.write(line)
            sys.stderr.flush()
    code = child.wait()
    if code != 0 and not own_error:
        print(f"error: {cluster.name()}: {_cause(''.join(tail), code)}", file=sys.stderr)
        return code if code > 0 else 1
    return code


def _cause(log: str, code: int) -> str:
    """One line for the way a child died, from what the runtime logged."""
    if "RegisterTask" in log:
        return (
            "the cluster did not form: not every process joined the coordinator (same address, "
            "same process count, every id started?)"
        )
    if "heartbeat" in log or "another task died" in log or "unhealthy" in log:
        return "another process of the cluster stopped (its heartbeats were lost)"
    signal = f"signal {-code}" if code < 0 else f"exit code {code}"
    last = next((x for x in reversed(log.splitlines()) if x.strip()), "no output")
    return f"stopped with {signal}: {last.strip()[:200]}"
