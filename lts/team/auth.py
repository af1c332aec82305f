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
import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

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


# -- sign-in rate limiting -----------------------------------------------------------------------
@dataclass(frozen=True)
class Admission:
    """The limiter's answer to one sign-in attempt (:meth:`SignInLimiter.admit`)."""

    allowed: bool
    wait_s: float  # allowed: back-off to wait before checking the password; refused: until one may try again
    reason: str | None = None  # refused: one line for the sign-in form
    name: str = ""
    client: str = ""
    token: int = 0  # this attempt's entry, counted as a failure until :meth:`SignInLimiter.record` says otherwise


class SignInLimiter:
    """Failed password sign-ins per user name and per client, shared by every browser session.

    Streamlit runs each browser session's script in a thread of one process, and a reload starts a
    new session, so the counts live here (one instance per server, ``st.cache_resource`` in the app),
    behind a lock. Within ``window_s``, at most ``per_name`` failures for one user name and
    ``per_client`` from one client address; beyond that :meth:`admit` refuses without checking the
    password. Below it, each attempt waits ``base_delay_s * 2**(n-1)`` (at most ``max_delay_s``)
    after the last of the n failures. An attempt counts as a failure from the moment it is admitted,
    so parallel sessions cannot run more checks than the limit; a success clears its user name's
    failures (a client's stay: one client guessing several names is still one client).

    Locking a name for ``window_s`` is the price: five wrong guesses by anyone lock that user's
    password sign-in for five minutes (OIDC sign-in is not affected).
    """

    def __init__(self, per_name: int = 5, per_client: int = 20, window_s: float = 300.0,
                 base_delay_s: float = 0.25, max_delay_s: float = 4.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_name, self.per_client, self.window_s = per_name, per_client, window_s
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], list[tuple[float, int]]] = {}  # ("name"|"client", key) -> (at, token)
        self._next_token = 0

    def _recent(self, key: tuple[str, str], now: float) -> list[tuple[float, int]]:
        kept = [f for f in self._failures.get(key, ()) if now - f[0] < self.window_s]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)  # so that many one-off names do not pile up
        return kept

    def _backoff(self, recent: list[tuple[float, int]], now: float) -> float:
        if not recent:
            return 0.0
        delay = min(self.base_delay_s * 2 ** (len(recent) - 1), self.max_delay_s)
        return max(0.0, recent[-1][0] + delay - now)

    def admit(self, name: str, client: str) -> Admission:
        """Whether ``name`` may be tried from ``client`` now; if so the attempt is counted at once."""
        name, client = name.strip(), client or "unknown"
        with self._lock:
            now = self._clock()
            if len(self._failures) > 4096:  # forget stale keys now and then
                for key in list(self._failures):
                    self._recent(key, now)
            by_name, by_client = self._recent(("name", name), now), self._recent(("client", client), now)
            for recent, limit, what in ((by_name, self.per_name, f"for {name or 'this user name'}"),
                                        (by_client, self.per_client, "from this address")):
                if len(recent) >= limit:
                    retry = recent[-limit][0] + self.window_s - now
                    return Admission(False, retry, f"Too many failed sign-ins {what}: try again in "
                                                   f"{max(1, math.ceil(retry / 60))} min.", name, client)
            wait = max(self._backoff(by_name, now), self._backoff(by_client, now))
            self._next_token += 1
            entry = (now + wait, self._next_token)  # a failure as of when its check will run
            self._failures.setdefault(("name", name), []).append(entry)
            self._failures.setdefault(("client", client), []).append(entry)
            return Admission(True, wait, None, name, client, self._next_token)

    def record(self, admission: Admission, ok: bool) -> None:
        """The outcome of an admitted attempt: a success clears its name's failures (and is none itself)."""
        if not admission.allowed or not ok:
            return
        with self._lock:
            self._failures.pop(("name", admission.name), None)
            key = ("client", admission.client)
            kept = [f for f in self._failures.get(key, ()) if f[1] != admission.token]
            if kept:
                self._failures[key] = kept
            else:
                self._failures.pop(key, None)

    def failures(self, name: str | None = None, client: str | None = None) -> int:
        """Failures within the window for ``name`` or for ``client`` (for tests and the log)."""
        key = ("name", name.strip()) if name is not None else ("client", client or "unknown")
        with self._lock:
            return len(self._recent(key, self._clock()))
