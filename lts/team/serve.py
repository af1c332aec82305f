"""``lts serve``: start the dashboard, refusing to expose it without sign-in.

Anyone who reaches the dashboard can launch searches that occupy the host and import or delete
data, so:

* with no sign-in configured (no ``[auth]`` provider, no ``[lts.users]`` in the secrets), it serves
  on a loopback address only;
* binding another address without sign-in needs ``--allow-unauthenticated`` (or
  ``LTS_ALLOW_UNAUTHENTICATED=1``), and then every page carries a warning (:func:`exposure`, which
  the app also checks itself, so ``streamlit run --server.address=0.0.0.0`` cannot go around it).

The server is Streamlit itself (``python -m streamlit run dashboard/app.py``), exec'd with every
setting that decides who can reach it and what it accepts or shows (:func:`pinned_options`) as
command-line flags, which beat Streamlit's other sources (``~/.streamlit/config.toml``, the working
folder's ``.streamlit/config.toml``, the app folder's, ``STREAMLIT_*`` variables): the result does not
depend on where ``lts serve`` was started. Extras after ``--`` and ``STREAMLIT_*`` variables that try
to set one of them are refused with one line instead of silently losing.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
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


def upload_limit_mb(config: TeamConfig) -> int:
    """``server.maxUploadSize`` (whole MB, Streamlit's unit) for ``max_upload_mb``: one bundle fits."""
    return max(1, math.ceil(config.limits.max_upload_mb))


def pinned_options(options: ServeOptions, config: TeamConfig) -> dict[str, str]:
    """The Streamlit options ``lts serve`` sets itself, as ``--KEY=VALUE`` flags (see the module doc)."""
    return {
        "server.address": options.address,
        "server.port": str(options.port),
        "server.headless": "true",  # never open a browser on the server
        "server.maxUploadSize": str(upload_limit_mb(config)),  # per file: Streamlit has no per-session total
        # Uploads need the XSRF cookie's token; the websocket's Origin must be this host (CORS on).
        # Off, any web page a signed-in (or loopback) user visits could drive the app.
        "server.enableXsrfProtection": "true",
        "server.enableCORS": "true",
        "server.enableStaticServing": "false",  # no files served beside the app
        "server.enableAgentApi": "false",  # no HTTP/MCP driving of sessions
        "server.trustedUserHeaders": "{}",  # st.user from request headers would let a client claim a sign-in
        "browser.gatherUsageStats": "false",
        "client.showErrorDetails": "none",  # a generic message in the browser; tracebacks and paths go to the log
        "global.developmentMode": "false",
    }


# What an extra or a STREAMLIT_* variable should use instead of a pinned option.
_INSTEAD = {
    "server.address": "use lts serve --address",
    "server.port": "use lts serve --port",
    "server.maxUploadSize": "set max_upload_mb in [lts.limits] or LTS_MAX_UPLOAD_MB",
}


def _refuse_overrides(pinned: Mapping[str, str], extra: tuple[str, ...], env: Mapping[str, str]) -> None:
    """LtsError naming the first extra or variable that would set a pinned option."""
    by_name = {key.lower(): key for key in pinned}
    for token in extra:
        if not token.startswith("--"):
            continue  # an option's value, or an argument for the script
        key = by_name.get(token[2:].split("=", 1)[0].lower())
        if key:
            raise LtsError(f"{token.split('=', 1)[0]}: lts serve sets {key}={pinned[key]} itself; "
                           f"{_INSTEAD.get(key, 'it cannot be changed')}")
    for key, value in pinned.items():
        var = _env_var(key)
        # The flag would win anyway; refusing says so instead of ignoring it. The same value is fine
        # (container images often set STREAMLIT_SERVER_HEADLESS=true).
        if var in env and env[var].strip().lower() != value.lower():
            raise LtsError(f"{var} is set: lts serve sets {key}={value} itself; "
                           f"{_INSTEAD.get(key, 'unset it')}")


def _env_var(key: str) -> str:
    """Streamlit's variable for an option: server.maxUploadSize -> STREAMLIT_SERVER_MAX_UPLOAD_SIZE."""
    return "STREAMLIT_" + re.sub(r"([a-z])([A-Z])", r"\1_\2", key).replace(".", "_").upper()


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
    pinned = pinned_options(options, config)
    _refuse_overrides(pinned, options.extra, env)
    if allow:
        env[ALLOW_ENV] = "1"  # the app reads it to warn instead of refusing
    argv = [sys.executable, "-m", "streamlit", "run", str(find_app(options.app)),
            *(f"--{key}={value}" for key, value in pinned.items()), *options.extra]
    return argv, env


def serve(options: ServeOptions, config: TeamConfig) -> None:
    """Replace this process with the Streamlit server (never returns)."""
    argv, env = build_command(options, config)
    os.execve(argv[0], argv, env)
