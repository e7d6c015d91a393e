"""Who may connect to the Ray a `--ray` run uses, and the CPUs a private one offers (`ray_connect`).

Ray starts twice here in all (a private instance, shared by two tests, and a one-node cluster
without authentication), on 127.0.0.1; the Ray tests are skipped where Ray is not installed.
"""

import contextlib
import ipaddress
import os
import socket
import stat
from pathlib import Path

import pytest
import torch
from stylereel.pipeline import ray_connect
from stylereel.pipeline.config import Config
from stylereel.pipeline.events import Notice

try:
    import ray
    import psutil  # Ray's own copy (ray/thirdparty_files) is found once Ray is imported
except ImportError:
    ray = psutil = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install -e '.[test]' or '.[ray]')")


def test_a_private_ray_offers_the_threads_torch_runs_on_not_the_logical_cpus(monkeypatch):
    # With SMT, os.cpu_count() counts each core twice while torch runs on the physical cores: tasks
    # holding torch's threads each must then not be given twice as many CPUs as there are cores.
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert ray_connect.local_cpus() == 4

    class Ray:  # a private instance offering local_cpus(), as `placement` sees it
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": float(ray_connect.local_cpus())}}]

    config = Config(ray="local", device="cpu")
    assert ray_connect.placement(Ray, config) == ({"num_cpus": 4}, 1)  # one task, on torch's 4 threads
    assert ray_connect.placement(Ray, Config(ray="local", device="cpu", ray_cpus=1)) == ({"num_cpus": 1}, 4)


def _listening() -> dict[str, list[str]]:
    """The sockets that take connections (TCP listening, UDP bound without a peer) of this process
    and of every process it started, directly or not (all of Ray's), by "name pid"."""
    me = psutil.Process()
    found = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            sockets, name = process.net_connections(kind="inet"), process.name()
        except psutil.Error:  # ended meanwhile
            continue
        found[f"{name} {process.pid}"] = sorted(
            f"{entry.laddr.ip} {entry.laddr.port}" for entry in sockets
            if entry.status == psutil.CONN_LISTEN or (entry.type == socket.SOCK_DGRAM and not entry.raddr))
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split()[0])
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # "::ffff:127.0.0.1" is loopback too


def _ray_processes() -> list:
    return [process for process in psutil.Process().children(recursive=True) if process.is_running()]


@contextlib.contextmanager
def _auth_environment(**values: str):
    """Ray's token settings as given (the others unset) for this process and what it starts; put
    back, and Ray's cached copy reloaded, at the end."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ray_connect.AUTH_VARIABLES:
            if name in values:
                patch.setenv(name, values[name])
            else:
                patch.delenv(name, raising=False)
        ray_connect.reload_auth()
        try:
            yield
        finally:
            patch.undo()
            ray_connect.reload_auth()


@pytest.fixture(scope="module")
def private_ray() -> dict:
    """One `--ray local` connection made with RAY_AUTH_MODE=disabled in the environment, and what
    was seen while it was open (a worker up) and after."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    seen = {"events": []}
    with _auth_environment(RAY_AUTH_MODE="disabled"):
        with ray_connect.connect("local", emit=seen["events"].append):
            ray.get(ray.remote(num_cpus=0)(lambda: None).remote())  # a worker is up, and listening too
            token = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
            seen |= {"token": token, "token_mode": stat.S_IMODE(token.stat().st_mode),
                     "folder_mode": stat.S_IMODE(token.parent.stat().st_mode),
                     "token_here": get_authentication_mode() == AuthenticationMode.TOKEN,
                     "listening": _listening(), "settings": {}}
            for process in _ray_processes():
                with contextlib.suppress(psutil.Error):
                    environment = process.environ()  # empty for the agents: their new titles overwrote it
                    if environment:
                        seen["settings"][f"{process.name()} {process.pid}"] = (
                            environment.get("RAY_AUTH_MODE"), environment.get("RAY_AUTH_TOKEN_PATH"))
        seen["after"] = {"token": token.exists(), "folder": token.parent.exists(),
                         "variables": {name: os.environ.get(name) for name in ray_connect.AUTH_VARIABLES}}
    return seen


@needs_ray
def test_a_private_ray_listens_on_loopback_only(private_ray):
    listening = private_ray["listening"]
    names = " ".join(name for name, sockets in listening.items() if sockets)
    assert "gcs_server" in names and "raylet" in names  # the listing sees Ray's servers
    outside = {name: [address for address in sockets if not _loopback(address)] for name, sockets in listening.items()}
    assert not any(outside.values()), outside


@needs_ray
def test_a_private_ray_requires_a_token_made_for_the_run_even_with_auth_disabled_in_the_environment(private_ray):
    token = private_ray["token"]
    assert private_ray["token_here"]  # this process's Ray (the driver) sends and checks the token
    settings = private_ray["settings"]  # what each of Ray's processes (GCS, raylet, agents, workers) reads
    assert {name.split()[0] for name in settings} >= {"gcs_server", "raylet"}
    assert set(settings.values()) == {("token", str(token))}, settings
    assert private_ray["token_mode"] == 0o600 and private_ray["folder_mode"] == 0o700
    assert private_ray["after"] == {"token": False, "folder": False,
                                    "variables": {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": None,
                                                  "RAY_AUTH_TOKEN_PATH": None}}
    assert private_ray["events"] == []  # nothing to warn about


@needs_ray
def test_an_unauthenticated_cluster_gives_one_warning_when_joined_or_already_connected(monkeypatch):
    from ray.cluster_utils import Cluster

    # A driver joining HOST:PORT has Ray swap 127.0.0.1 for the machine's outward address, where a
    # cluster bound to 127.0.0.1 does not listen: keep the address as it is, so nothing leaves lo.
    monkeypatch.setattr(ray._private.services, "resolve_ip_for_localhost", lambda host: host)
    with _auth_environment(RAY_AUTH_MODE="disabled"):
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False})
    address, joined, existing = nodes.address, [], []
    try:
        with _auth_environment(RAY_AUTH_MODE="disabled"):  # joining without a token: the cluster took it
            with ray_connect.connect(address, emit=joined.append):
                pass
        # This process already connected, with a token the cluster does not ask for: a task asks.
        with _auth_environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="ab" * 32):
            ray.init(address=address, _node_ip_address="127.0.0.1", log_to_driver=False)
            try:
                with ray_connect.connect("local", emit=existing.append):
                    pass
                assert ray.is_initialized()  # the existing connection stays open
            finally:
                ray.shutdown()
    finally:
        nodes.shutdown()
    warning = f"--ray {address}: the cluster does not require a token"
    assert [event.text.split(" (")[0] for event in joined] == [warning]
    assert all(isinstance(event, Notice) for event in joined + existing)
    assert "anyone who can reach it can run code on it" in joined[0].text
    assert [event.text.split(":")[0] for event in existing] == ["--ray local", "--ray local"]
    assert "already connected to Ray at" in existing[0].text and "instead of a private instance" in existing[0].text
    assert existing[1].text.startswith("--ray local: the cluster does not require a token")
