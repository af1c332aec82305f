"""Who may do what: users, roles, password hashes and the permission check every guarded call makes.

Roles:

* ``viewer``   -- browse, filter, download;
* ``operator`` -- also launch and cancel searches, validation runs and re-measurements, import
  bundles and delete runs.

The check lives in the library call a page makes (:func:`require`, used by :mod:`lts.team.guarded`),
so hiding a button is a convenience, never the protection.

Passwords (the fallback for a team without an identity provider) are stored only as salted scrypt
hashes, ``scrypt$N$r$p$<salt>$<hash>`` (base64), made by ``lts team hash-password``; they are
compared in constant time (:func:`hmac.compare_digest`), and an unknown user name costs the same
hash as a known one, so timing does not tell which names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from lts.errors import LtsError

VIEWER, OPERATOR = "viewer", "operator"
ROLES: dict[str, frozenset[str]] = {
    VIEWER: frozenset({"browse", "download"}),
    OPERATOR: frozenset({"browse", "download", "launch", "cancel", "import", "delete"}),
}
# What each action lets a user do, as the refusal says it: "viewer alice may not launch searches".
ACTIONS: dict[str, str] = {
    "browse": "browse results",
    "download": "download results",
    "launch": "launch searches",
    "cancel": "cancel searches",
    "import": "import bundles",
    "delete": "delete runs",
}

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
MIN_PASSWORD = 8
# Burned for an unknown user name so that it costs what a known one does (its password is unknown).
_DECOY = "scrypt$16384$8$1$KObe8s0aadHf6z+zNkGtVQ==$8FrX1tzUHf51aovo+8lZt2PVpRIUhVnJsbzxsy5N+Hs="


class PermissionDenied(LtsError):
    """A user (or nobody signed in) asked for something their role does not allow."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # "password", "oidc", "local" (no sign-in, loopback only) or "open" (--allow-unauthenticated)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise LtsError(f"unknown role {self.role!r} for user {self.name!r}; choose from {', '.join(ROLES)}")

    def can(self, action: str) -> bool:
        return action in ROLES[self.role]

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "User":
        return cls(name=str(d["name"]), role=str(d["role"]), via=str(d["via"]))


def require(user: User | None, action: str, what: str | None = None) -> User:
    """``user`` if its role allows ``action``; otherwise PermissionDenied with one line.

    ``what`` overrides the action's wording ("launch validation runs")."""
    if action not in ACTIONS:
        raise LtsError(f"unknown action {action!r}")
    phrase = what or ACTIONS[action]
    if user is None:
        raise PermissionDenied(f"sign in to {phrase}")
    if not user.can(action):
        raise PermissionDenied(f"{user.role} {user.name} may not {phrase}")
    return user


# -- password hashes ---------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password`` in the ``scrypt$N$r$p$salt$hash`` form."""
    if len(password) < MIN_PASSWORD:
        raise LtsError(f"a password needs at least {MIN_PASSWORD} characters")
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> None:
    """One line naming what is wrong with a stored hash (raises), or nothing."""
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise LtsError("password_hash must look like scrypt$N$r$p$salt$hash (make one with: lts team hash-password)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        base64.b64decode(parts[4], validate=True)
        base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise LtsError("password_hash has a malformed number or base64 field") from None
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise LtsError(f"password_hash parameters N={n} r={r} p={p} are out of range")


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison of the digests)."""
    check_hash_format(stored)
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(expected), maxmem=2**27)
    return hmac.compare_digest(got, expected)


def authenticate(users: Mapping[str, Mapping[str, str]], name: str, password: str) -> User | None:
    """The password user ``name`` if ``password`` is theirs, else None (same cost either way).

    ``users`` maps a user name to ``{"role": ..., "password_hash": ...}`` (``[lts.users.NAME]``)."""
    entry = users.get(name.strip()) if name else None
    ok = verify_password(password, entry["password_hash"] if entry else _DECOY)
    if not (ok and entry):
        return None
    return User(name=name.strip(), role=entry["role"], via="password")
