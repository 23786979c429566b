"""Start or join a Ray cluster (ray.io) for ``--engine ray``: local by default, nothing leaves the machine.

Local (no address): a new Ray instance on this machine only, bound to 127.0.0.1
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray pick the loopback address on Linux too), usage statistics
off, no dashboard, ``num_cpus`` from the machine unless given. Recent Ray turns token authentication on for
a new local cluster and, without a token, writes one to ``~/.ray/auth_token``; capeval instead hands the
cluster a fresh random token through ``RAY_AUTH_TOKEN`` in this process's environment (inherited by the
workers Ray starts), so authentication stays on and nothing is written to the home folder. A user's own
``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` are respected as set.

Cluster (``--ray-address ADDR`` or ``RAY_ADDRESS``): Ray's own rules apply; the cluster's token must be
available as Ray documents (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``). An authentication failure
becomes one line naming those variables.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import sys
from dataclasses import dataclass

from capeval.errors import CapevalError

log = logging.getLogger("capeval")

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class EngineError(CapevalError):
    """The Ray engine can't run (Ray missing, cluster unreachable, authentication refused)."""


@dataclass(frozen=True)
class RaySession:
    """A Ray connection capeval opened (``started``: capeval started the local instance and stops it)."""

    address: str
    started: bool
    num_cpus: float


def ray_available() -> bool:
    """Whether the ``ray`` package (``pip install 'capeval[ray]'``) is importable."""
    return importlib.util.find_spec("ray") is not None


def local_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables set before starting a local Ray (a fresh token unless the user set one).

    Example:
        >>> env = local_environment({})
        >>> env["RAY_AUTH_MODE"], len(env["RAY_AUTH_TOKEN"]), env["RAY_USAGE_STATS_ENABLED"]
        ('token', 64, '0')
    """
    env = dict(os.environ if env is None else env)
    out = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if not any(env.get(k) for k in AUTH_ENV):
        out["RAY_AUTH_MODE"] = "token"
        out["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return out


def start_ray(address: str | None = None, num_cpus: int | None = None) -> RaySession:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local loopback-only Ray instance.

    Reuses a Ray already initialised in this process (e.g. by a test or a notebook).
    """
    if not ray_available():
        raise EngineError("--engine ray needs Ray: pip install 'capeval[ray]'")
    address = address or os.environ.get("RAY_ADDRESS") or None
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if address is None and not ("ray" in sys.modules and sys.modules["ray"].is_initialized()):
        # before Ray is imported: it reads its authentication mode and node address rules at import time
        os.environ.update(local_environment())
    import ray

    if ray.is_initialized():
        return RaySession(ray.get_runtime_context().gcs_address, False, ray.cluster_resources().get("CPU", 0))
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    try:
        if address is None:
            _refresh_imported_ray()
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many types; the user needs one line
        text = " ".join(str(exc).split())
        if "auth" in text.lower() or type(exc).__name__ == "AuthenticationError":
            raise EngineError(
                f"Ray cluster {address or 'local'} refused the connection ({text[:200]}); set RAY_AUTH_TOKEN or "
                "RAY_AUTH_TOKEN_PATH to the cluster's token (or RAY_AUTH_MODE=disabled for a cluster without "
                "authentication)") from None
        raise EngineError(f"can't start or reach Ray at {address or 'a new local instance'}: {text[:300]}") from None
    session = RaySession(ray.get_runtime_context().gcs_address, True, ray.cluster_resources().get("CPU", 0))
    log.info("capeval: Ray %s at %s (%g CPUs)", "started" if address is None else "joined", session.address,
             session.num_cpus)
    return session


def _refresh_imported_ray() -> None:
    """When Ray was imported before :func:`local_environment` was set: make it see the new settings."""
    from ray._private import ray_constants
    from ray._raylet import Config

    ray_constants.ENABLE_RAY_CLUSTER = False  # loopback node address
    Config.initialize("")  # re-read RAY_AUTH_MODE, as Ray itself does when it turns token mode on


def stop_ray(session: RaySession) -> None:
    """Shut down what :func:`start_ray` started (a Ray found already running is left alone)."""
    if session.started:
        import ray

        ray.shutdown()
