"""``lts serve``: start the dashboard, refusing to expose it without sign-in.

Anyone who reaches the dashboard can launch searches that occupy the host and import or delete
data, so:

* with no sign-in configured (no ``[auth]`` provider, no ``[lts.users]`` in the secrets), it serves
  on a loopback address only;
* binding another address without sign-in needs ``--allow-unauthenticated`` (or
  ``LTS_ALLOW_UNAUTHENTICATED=1``), and then every page carries a warning (:func:`exposure`, which
  the app also checks itself, so ``streamlit run --server.address=0.0.0.0`` cannot go around it).

The server is Streamlit itself (``python -m streamlit run dashboard/app.py``), exec'd with the address,
the port, and the upload limit of :class:`lts.team.limits.Limits`.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lts.errors import LtsError
from lts.team.config import TeamConfig

ALLOW_ENV = "LTS_ALLOW_UNAUTHENTICATED"


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` only accepts connections from this machine ("" means every interface)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def allow_from_env(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ALLOW_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Exposure:
    """What the app must do on this address: serve, serve with a warning on every page, or refuse."""

    refused: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.refused is None


def exposure(address: str | None, config: TeamConfig, allow_unauthenticated: bool) -> Exposure:
    if is_loopback(address) or config.sign_in_configured:
        return Exposure()
    where = address or "every interface"
    if not allow_unauthenticated:
        return Exposure(refused=(
            f"refusing to serve on {where} without sign-in: configure users or an OIDC provider in "
            f".streamlit/secrets.toml (see the README's team set-up), serve on 127.0.0.1, or pass "
            f"--allow-unauthenticated ({ALLOW_ENV}=1)"))
    return Exposure(warning=(
        f"This dashboard listens on {where} without sign-in (--allow-unauthenticated): anyone who can reach it "
        f"can launch searches, import bundles and delete runs."))


@dataclass(frozen=True)
class ServeOptions:
    address: str = "127.0.0.1"
    port: int = 8501
    allow_unauthenticated: bool = False
    app: Path | None = None  # default: dashboard/app.py of the working folder, else of the source tree
    extra: tuple[str, ...] = ()  # further Streamlit options, passed on as they are


def find_app(app: Path | None = None) -> Path:
    candidates = [app] if app else [Path.cwd() / "dashboard" / "app.py",
                                    Path(__file__).resolve().parents[2] / "dashboard" / "app.py"]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    raise LtsError(f"no dashboard app at {candidates[0]}: run lts serve from the lts folder or pass --app")


def build_command(options: ServeOptions, config: TeamConfig,
                  env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The Streamlit command line and environment for ``options``; LtsError if it must not start."""
    env = dict(os.environ if env is None else env)
    allow = options.allow_unauthenticated or allow_from_env(env)
    decision = exposure(options.address, config, allow)
    if not decision.ok:
        raise LtsError(decision.refused)
    if config.oidc:
        try:
            import authlib  # noqa: F401  (st.login needs it; without it the sign-in button fails)
        except ImportError:
            raise LtsError("[auth] is configured but Authlib is not installed: pip install 'Authlib>=1.3.2'") from None
    if not 0 < options.port < 65536:
        raise LtsError(f"port must be 1-65535, got {options.port}")
    if allow:
        env[ALLOW_ENV] = "1"  # the app reads it to warn instead of refusing
    argv = [sys.executable, "-m", "streamlit", "run", str(find_app(options.app)),
            f"--server.address={options.address}", f"--server.port={options.port}",
            f"--server.maxUploadSize={max(1, int(config.limits.max_upload_mb + 0.999))}", *options.extra]
    return argv, env


def serve(options: ServeOptions, config: TeamConfig) -> None:
    """Replace this process with the Streamlit server (never returns)."""
    argv, env = build_command(options, config)
    os.execve(argv[0], argv, env)
