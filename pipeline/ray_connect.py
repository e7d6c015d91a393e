"""Joining or starting the Ray cluster a `--ray` run uses, and what each task asks of it.

Who may connect: a private Ray (`--ray local`) listens on 127.0.0.1 only and requires a token made
for the run; joining a cluster that takes requests without a token is allowed, with a warning, since
anyone who can reach such a cluster can run code on it.

With `cluster`, the only modules that import `ray`, and only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .config import Config, Device
from .errors import ClusterError, ConfigError
from .events import Callback, Notice

INSTALL = 'pip install "stylereel[ray]"'
MISSING = f"--ray needs Ray, which is not installed here; install it with: {INSTALL}"
UNAUTHENTICATED = ("--ray {address}: the cluster does not require a token (Ray's token authentication is off), so "
                   "anyone who can reach it can run code on it; start its nodes with RAY_AUTH_MODE=token")
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # Ray's token settings (Ray >= 2.52)
AUTH_CHECK_WAIT = 60.0  # seconds to wait for a cluster's worker to say whether it requires a token
QUIET = {"logging_level": logging.ERROR, "log_to_driver": False}  # options of every ray.init here


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
def connect(address: str, *, emit: Callback | None = None) -> Iterator[ModuleType]:
    """Join the Ray cluster at `address` ("auto": Ray's discovery and RAY_ADDRESS; HOST:PORT), or
    start a private one on this machine ("local"), and leave it at the end.

    A "local" instance listens on 127.0.0.1 only, starts no dashboard (`init_local`), offers
    `local_cpus()` CPUs and requires a token made for this run (`_auth_settings`), whatever
    RAY_AUTH_MODE says. Joining a cluster uses the token Ray finds (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) when the cluster asks for one; a cluster that does not
    gets one `Notice` saying so (`UNAUTHENTICATED`).

    A process already connected to Ray (a notebook, the tests) keeps its connection, whatever
    `address` says, and leaves it open at the end; it is checked as a joined cluster is (one
    `Notice` if it takes requests without a token), and with "local" a `Notice` says that the
    existing connection is used instead of a private instance.

    Args:
        address: "local", "auto" or HOST:PORT (`Config.ray`).
        emit: receives those `Notice`s, on the caller's thread; None drops them.

    Raises:
        ConfigError: Ray is not installed.
        ClusterError: Ray cannot start or the cluster cannot be joined, or a private instance
            would listen beyond 127.0.0.1 or take requests without a token.
    """
    ray = require_ray()
    notify = emit or (lambda event: None)
    if ray.is_initialized():
        if address == "local":
            notify(Notice(f"--ray local: this process is already connected to Ray at "
                          f"{ray.get_runtime_context().gcs_address}; using that instead of a private instance"))
        _warn_if_open(ray, address, notify)
        yield ray
        return
    with _auth_settings(private_token=address == "local"):
        try:
            _start(ray, address)
            if address != "local":
                _warn_if_open(ray, address, notify)
            yield ray
        finally:
            if address == "local":
                _stop_monitor(ray)
            ray.shutdown()


def _start(ray: ModuleType, address: str) -> None:
    """`ray.init` for `connect`, its failures as one ClusterError line."""
    try:
        if address == "local":
            init_local(ray, num_cpus=local_cpus(), **QUIET)
            if not _token_required_here():
                ray.shutdown()
                raise ClusterError(f"--ray local: Ray {ray.__version__} started without token authentication")
        else:
            ray.init(address=address, **QUIET)
    except ClusterError:
        raise
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError ... here
        raise ClusterError(f"--ray {address}: cannot {'start' if address == 'local' else 'join'} a Ray cluster "
                           f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


@contextlib.contextmanager
def _auth_settings(*, private_token: bool) -> Iterator[None]:
    """Ray's token settings (`AUTH_VARIABLES`) for one connection, put back as they were at the end
    (Ray itself sets RAY_AUTH_MODE when "auto" finds a token file).

    With `private_token`, a token made for this run, in a file only this user can read (0600, in a
    0700 folder), given to Ray as RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (a RAY_AUTH_TOKEN,
    which Ray would read first, is set aside): the file and its folder are removed at the end, also
    on errors and Ctrl-C."""
    saved = {name: os.environ.get(name) for name in AUTH_VARIABLES}
    folder = Path(tempfile.mkdtemp(prefix="stylereel-ray-")) if private_token else None
    try:
        if folder is not None:
            path = folder / "auth_token"
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(secrets.token_hex(32))
            os.environ.pop("RAY_AUTH_TOKEN", None)
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(path))
            reload_auth()
        yield
    finally:
        if saved != {name: os.environ.get(name) for name in AUTH_VARIABLES}:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reload_auth()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def reload_auth() -> None:
    """Make this process's Ray read its token settings (`AUTH_VARIABLES`) again after they changed
    in `os.environ`: it caches them. The config first, then
    the token (Ray's own order, `ray._private.authentication_test_utils`: a token reloaded while the
    config still says "token" fails once the file is gone)."""
    from ray._raylet import AuthenticationTokenLoader, Config as RayConfig

    RayConfig.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _token_required_here() -> bool:
    """Whether this process's Ray requires a token (and so do the Ray processes it started)."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return get_authentication_mode() == AuthenticationMode.TOKEN


def _warn_if_open(ray: ModuleType, address: str, notify: Callback) -> None:
    """One `Notice` if the connected cluster takes requests without a token. Connected without a
    token, it does; connected with one, a task asks one of its workers (whose settings are its
    node's), since a cluster without authentication accepts a token as well."""
    if _token_required_here():
        def required() -> bool:
            from ray._raylet import AuthenticationMode, get_authentication_mode

            return get_authentication_mode() == AuthenticationMode.TOKEN

        try:
            if ray.get(ray.remote(num_cpus=0)(required).remote(), timeout=AUTH_CHECK_WAIT):
                return
        except Exception as error:  # a timeout, a worker that cannot start: say so, and go on
            notify(Notice(f"--ray {address}: could not tell whether the cluster requires a token "
                          f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"))
            return
    notify(Notice(UNAUTHENTICATED.format(address=address)))


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


def local_cpus() -> int:
    """CPUs a private Ray (`--ray local`) offers: the threads torch runs on here
    (`torch.get_num_threads()`: the physical cores by default, or `OMP_NUM_THREADS`), not
    `os.cpu_count()`, which counts each core twice with SMT. Tasks run torch on as many threads as
    the CPUs they hold (`task_cpus`), so together they never run more threads than torch would alone."""
    return max(1, torch.get_num_threads())


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
    holds, and on some CPUs the thread count changes the rounding and so the frames
    (docs/scale-out.md, Same result as a local run): on one machine a task then computes what a local run computes, and on a cluster as many
    shots run at once as there are CPUs."""
    if config.ray_cpus:
        return config.ray_cpus
    return torch.get_num_threads() if config.ray == "local" else 1
