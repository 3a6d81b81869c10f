"""The Ray cluster a search runs on: joining it with a clear error, and what it can hold.

Checked before a run folder is created, so an address with no cluster behind it or a child that no
node could ever hold is one line, not a hang.
"""

from __future__ import annotations

import math
import socket

RAY_CONNECT_TIMEOUT_S = 10.0


def start_ray(address: str | None) -> bool:
    """Start a local Ray instance, or join the cluster at address; False when this process was connected already."""
    import ray

    if ray.is_initialized():  # the caller's session, with the caller's resources: theirs to shut down
        return False
    if address and address != "auto":
        _check_reachable(address)  # seconds, instead of minutes of Ray's own retries
    try:
        # "local": a private instance, never whichever cluster `ray start` last left on this machine
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)
    except ConnectionError as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RayUnavailable(f"--ray-address {address}: cannot join a Ray cluster ({reason})") from None
    return True


class RayUnavailable(ValueError):
    """No Ray cluster answers at the given address."""


def _check_reachable(address: str) -> None:
    """Refuse an address with no listener within RAY_CONNECT_TIMEOUT_S."""
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnavailable(f"--ray-address must be auto, host:port or ray://host:port, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RayUnavailable(f"--ray-address {address}: nothing answers there ({reason}); "
                             "is the cluster's head node running?") from None


def trial_slots(settings, nodes: list[dict]) -> int:
    """How many children (settings: SearchSettings) run at once on these Ray nodes; refuses one no node can hold."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    cpus, gpus = settings.cpus_per_trial, settings.gpus_per_trial
    largest_cpu = max((r.get("CPU", 0.0) for r in alive), default=0.0)
    largest_gpu = max((r.get("GPU", 0.0) for r in alive), default=0.0)
    if cpus > largest_cpu:
        raise ValueError(f"--cpus-per-trial {cpus:g}: no node of the Ray cluster has that many CPUs "
                         f"(the largest has {largest_cpu:g})")
    if gpus > largest_gpu:
        have = f"the largest node has {largest_gpu:g}" if largest_gpu else "the cluster has none"
        raise ValueError(f"--gpus-per-trial {gpus:g}: no node of the Ray cluster has that many GPUs ({have})")
    slots = sum(min(r.get("CPU", 0.0) // cpus, r.get("GPU", 0.0) // gpus if gpus else math.inf) for r in alive)
    return max(1, int(slots))
