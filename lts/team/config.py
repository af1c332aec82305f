"""The team settings in ``.streamlit/secrets.toml``: sign-in (OIDC or passwords), roles, limits.

The same mapping comes from ``st.secrets`` inside the app and from the files themselves in
``lts serve`` (which must decide before Streamlit starts whether sign-in is configured)::

    [auth]                                # Streamlit's own OIDC sign-in (st.login), optional
    redirect_uri = "https://lts.example.org/oauth2callback"
    cookie_secret = "a long random string"
    client_id = "..."
    client_secret = "..."
    server_metadata_url = "https://accounts.example.org/.well-known/openid-configuration"

    [lts]
    default_role = "viewer"               # OIDC users not listed in [lts.roles]; "none" to refuse them

    [lts.roles]                           # OIDC: role per e-mail address
    "alice@example.org" = "operator"

    [lts.users.bob]                       # password fallback: lts team hash-password
    role = "operator"
    password_hash = "scrypt$16384$8$1$...$..."

    [lts.limits]                          # see lts.team.limits
    max_budget = 500
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lts.errors import LtsError
from lts.team.auth import ROLES, User, check_hash_format
from lts.team.limits import Limits

OIDC_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def secrets_files(cwd: str | Path | None = None) -> list[Path]:
    """Where Streamlit reads secrets from, lowest precedence first (its default ``secrets.files``)."""
    return [Path.home() / ".streamlit" / "secrets.toml", Path(cwd or os.getcwd()) / ".streamlit" / "secrets.toml"]


def read_secrets(paths: list[Path] | None = None) -> dict[str, Any]:
    """The merged secrets of ``paths`` (later files win per top-level key, as in Streamlit)."""
    import tomllib

    merged: dict[str, Any] = {}
    for path in paths if paths is not None else secrets_files():
        if path.is_file():
            try:
                merged.update(tomllib.loads(path.read_text()))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise LtsError(f"{path}: not valid TOML ({exc})") from None
    return merged


def _plain(value: Any) -> Any:
    """st.secrets sections are AttrDicts; copy them into plain dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TeamConfig:
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # password users: name -> role, password_hash
    oidc_providers: tuple[str | None, ...] = ()  # None: the default provider of [auth]
    roles: dict[str, str] = field(default_factory=dict)  # OIDC e-mail -> role
    default_role: str | None = "viewer"  # for OIDC users not in roles (None: refused)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> "TeamConfig":
        """Parse and check the team part of a secrets mapping; one line naming what is wrong."""
        secrets = _plain(secrets or {})
        lts = secrets.get("lts") or {}
        users = {}
        for name, entry in (lts.get("users") or {}).items():
            if not isinstance(entry, Mapping) or "password_hash" not in entry:
                raise LtsError(f"[lts.users.{name}] needs role and password_hash")
            if entry.get("role", "viewer") not in ROLES:
                raise LtsError(f"[lts.users.{name}] role {entry.get('role')!r} is not one of {', '.join(ROLES)}")
            try:
                check_hash_format(entry["password_hash"])
            except LtsError as exc:
                raise LtsError(f"[lts.users.{name}] {exc}") from None
            users[name] = {"role": entry.get("role", "viewer"), "password_hash": entry["password_hash"]}
        roles = {str(k).lower(): str(v) for k, v in (lts.get("roles") or {}).items()}
        bad = [k for k, v in roles.items() if v not in ROLES]
        if bad:
            raise LtsError(f"[lts.roles] {bad[0]!r} has role {roles[bad[0]]!r}, not one of {', '.join(ROLES)}")
        default = lts.get("default_role", "viewer")
        if default not in (*ROLES, "none"):
            raise LtsError(f"[lts] default_role {default!r} is not one of {', '.join(ROLES)}, none")
        return cls(users=users, oidc_providers=_providers(secrets.get("auth")), roles=roles,
                   default_role=None if default == "none" else default,
                   limits=Limits.from_mapping(lts.get("limits"), env))

    @property
    def oidc(self) -> bool:
        return bool(self.oidc_providers)

    @property
    def sign_in_configured(self) -> bool:
        return self.oidc or bool(self.users)

    def oidc_user(self, info: Mapping[str, Any]) -> User | None:
        """The user for an OIDC identity (``st.user``): its e-mail's role, else the default role."""
        email = str(info.get("email") or "").lower()
        name = email or str(info.get("name") or info.get("sub") or "")
        if not name:
            return None
        role = self.roles.get(email, self.default_role)
        return User(name=name, role=role, via="oidc") if role else None


def _providers(auth: Any) -> tuple[str | None, ...]:
    """OIDC providers that ``st.login`` can use: the default one and/or ``[auth.NAME]`` sections."""
    if not isinstance(auth, Mapping):
        return ()
    missing = [k for k in OIDC_KEYS if not auth.get(k)]
    if missing:
        raise LtsError(f"[auth] lacks {missing[0]!r}: Streamlit's sign-in needs {', '.join(OIDC_KEYS)}")
    found: list[str | None] = []
    if all(auth.get(k) for k in PROVIDER_KEYS):
        found.append(None)
    for name, section in auth.items():
        if isinstance(section, Mapping) and name != "client_kwargs":  # the default provider's extra options
            lacking = [k for k in PROVIDER_KEYS if not section.get(k)]
            if lacking:
                raise LtsError(f"[auth.{name}] lacks {lacking[0]!r}")
            found.append(name)
    if not found:
        raise LtsError(f"[auth] names no provider: give {', '.join(PROVIDER_KEYS)} in it or in an [auth.NAME] section")
    return tuple(found)


def load_team_config(paths: list[Path] | None = None, env: Mapping[str, str] | None = None) -> TeamConfig:
    """The team settings from the secrets files Streamlit would read (for ``lts serve`` and the CLI)."""
    return TeamConfig.from_secrets(read_secrets(paths), env)
