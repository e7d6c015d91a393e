"""Joining or starting the Ray cluster a `--ray` run uses, and what each task asks of it.

With `cluster`, the only module that imports `ray`, and only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from .config import Config, Device
from .errors import ClusterError, ConfigError

INSTALL = 'pip install "stylereel[ray]"'
MISSING = f"--ray needs Ray, which is not installed here; install it with: {INSTALL}"


def require_ray() -> ModuleType:
    """The `ray` module; ConfigError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING) from None
    return ray


def check_ray() -> None:
    """ConfigError saying how to install Ray when it is missing, without importing it: the import
    takes most of a second, and `connect` makes it while the planning pass runs."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(MISSING)


@contextlib.contextmanager
def connect(address: str) -> Iterator[ModuleType]:
    """Join the Ray cluster at `address` ("auto": Ray's discovery and RAY_ADDRESS; HOST:PORT), or
    start a private one on this machine ("local"), and leave it at the end.

    A "local" instance listens on 127.0.0.1 only and starts no dashboard (`init_local`). A process
    already connected to Ray (a notebook, the tests) keeps its connection. Token authentication is
    Ray's own: a new local instance enables it (Ray >= 2.52), joining a cluster uses RAY_AUTH_TOKEN
    or ~/.ray/auth_token when the cluster asks for one.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address == "local":
            init_local(ray, num_cpus=os.cpu_count(), **quiet)
        else:
            ray.init(address=address, **quiet)
    except ClusterError:
        raise
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError ... here
        raise ClusterError(f"--ray {address}: cannot {'start' if address == 'local' else 'join'} a Ray cluster "
                           f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    try:
        yield ray
    finally:
        if address == "local":
            _stop_monitor(ray)
        ray.shutdown()


def init_local(ray: ModuleType, *, num_cpus: int | None, **options: Any) -> None:
    """Start a private Ray on this machine that listens on 127.0.0.1 only, with no dashboard (and so
    no job server). `options` go to `ray.init`.

    `ray.init` swaps a loopback `_node_ip_address` for the machine's outward address, and Ray's
    servers then listen on every interface; the swap is held off while Ray starts, and the node's
    address checked after: ClusterError (and no Ray left running) if it is not 127.0.0.1.
    """
    services = ray._private.services
    resolve = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 **options)
    finally:
        services.resolve_ip_for_localhost = resolve
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if addresses != {"127.0.0.1"}:
        ray.shutdown()
        raise ClusterError(f"--ray local: Ray {ray.__version__} would listen on {', '.join(sorted(addresses))}, "
                           "not only on 127.0.0.1; start a cluster yourself and use --ray auto")


def _stop_monitor(ray: ModuleType) -> None:
    """Kill a private Ray's autoscaler monitor, which has nothing to scale on one machine, before
    `ray.shutdown`: that stops the GCS first, and the monitor, whose SIGTERM handler reports to the
    GCS, then held every shutdown for Ray's whole 1 s grace period (Ray 2.60: 1.35 s of shutdown, of
    which 1.01 s waiting for the monitor)."""
    with contextlib.suppress(Exception):  # a private API: without it the shutdown is a second slower
        ray._private.worker._global_node.kill_monitor(check_alive=False)


def placement(ray: ModuleType, config: Config) -> tuple[dict[str, Any], int]:
    """What each task asks for, and how many tasks the cluster can run at once: one GPU each where the
    cluster has GPUs (and `--device` allows CUDA), else `ray_cpus` CPUs (at most one node's)."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    gpus = sum(int(node.get("GPU", 0)) for node in nodes)
    if gpus and config.device in (Device.auto, Device.cuda):
        return {"num_gpus": 1, "num_cpus": 1}, gpus
    cpus = min(task_cpus(config), max((int(node.get("CPU", 0)) for node in nodes), default=0))
    if cpus < 1:
        raise ClusterError("--ray: the cluster has no CPUs or GPUs to run tasks on")
    return {"num_cpus": cpus}, sum(int(node.get("CPU", 0)) // cpus for node in nodes)


def task_cpus(config: Config) -> int:
    """CPUs a task asks for where there are no GPUs: `ray_cpus`, or for 0 as many as torch runs on in
    this process with `--ray local` and 1 on a cluster. A task runs torch on as many threads as it
    holds, and on some CPUs the thread count changes the rounding and so the frames (README, Scale
    out): on one machine a task then computes what a local run computes, and on a cluster as many
    shots run at once as there are CPUs."""
    if config.ray_cpus:
        return config.ray_cpus
    return torch.get_num_threads() if config.ray == "local" else 1
