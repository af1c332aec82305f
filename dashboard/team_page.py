"""The Streamlit side of team use: the sign-in gate, the exposure warning, the current user.

The rules (roles, limits, exposure, the sign-in limiter, the upload guard) are :mod:`lts.team`'s; this
module only draws them. Call :func:`gate` once in ``dashboard/app.py``, before the page runs::

    from team_page import gate, may_enter
    page = st.navigation(PAGES, position="sidebar" if may_enter() else "hidden")
    user = gate()          # stops the page with a sign-in form until someone is signed in
    page.run()

with :func:`leave_older_multipage_mode` first in ``app.py`` and :func:`gate_if_page_ran_alone` first in
every page (``common.store``), so that no page runs without the gate. In a page, :func:`current_user`
and :func:`limits` give what the guarded calls need, and :func:`can` hides what the user may not do
(the guarded call checks anyway)::

    from lts.team import guarded
    from team_page import can, current_user, limits
    if can("launch") and st.button("Start"):
        guarded.launch_search(current_user(), store, db_path, space, device, limits=limits(), budget=50)

Sessions: a password sign-in lasts for the browser session (``st.session_state``; a reload asks
again); an OIDC sign-in lasts as long as Streamlit's identity cookie. Failed password sign-ins are
counted for the whole server (:func:`sign_in_limiter`: per user name and per client address), and
only a session whose user may import keeps uploaded files (:func:`upload_guard`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import streamlit as st

from lts.errors import LtsError
from lts.team.auth import OPERATOR, SignInLimiter, User, authenticate
from lts.team.config import TeamConfig, secrets_files
from lts.team.limits import Limits
from lts.team.serve import allow_from_env, exposure
from upload_guard import UploadGuard

if TYPE_CHECKING:
    from lts.cost.remote import RayDevice

USER_KEY = "lts_user"


@st.cache_resource(show_spinner=False)
def sign_in_limiter() -> SignInLimiter:
    """The server's one limiter: every browser session (a thread) counts in it, so a reload does not reset it."""
    return SignInLimiter()


@st.cache_resource(show_spinner=False)
def upload_guard() -> UploadGuard:
    """The server's one upload guard (see :class:`upload_guard.UploadGuard`)."""
    return UploadGuard()


def _client_address() -> str:
    """Who is signing in, as far as the server can tell: the websocket's peer address (uvicorn takes
    X-Forwarded-For only from a proxy on 127.0.0.1). Streamlit gives None on loopback."""
    try:
        ip = st.context.ip_address
    except Exception:  # outside a browser session (bare mode)
        return "unknown"
    if ip is None:
        return "loopback"
    return ip if isinstance(ip, str) else "unknown"  # AppTest's stand-in runtime gives a mock


def _guard_uploads(user: User | None) -> None:
    """Let this browser session keep uploads only if ``user`` may import; guard the server's uploads."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return
    guard = upload_guard()
    runtime = Runtime.instance()
    if guard.install(runtime.uploaded_file_mgr):  # once per server; nothing under AppTest's stand-in
        guard.forget_ended(runtime.is_active_session)
    guard.allow(ctx.session_id, user is not None and user.can("import"))


def team_config() -> TeamConfig:
    """The team settings from ``st.secrets`` (none configured: no sign-in, default limits)."""
    try:
        secrets: Any = dict(st.secrets)
    except Exception as exc:  # Streamlit raises the same error for "no file" and "unreadable file"
        if any(path.is_file() for path in secrets_files()):
            raise LtsError(f"cannot read the secrets: {(str(exc).splitlines() or [''])[0]}") from None
        secrets = {}
    return TeamConfig.from_secrets(secrets)


def current_user() -> User | None:
    """Who is signed in for this browser session (set by :func:`gate`); None before sign-in."""
    data = st.session_state.get(USER_KEY)
    return User.from_dict(data) if data else None


def can(action: str) -> bool:
    """Whether the current user may ``action`` (to hide buttons; the guarded call checks anyway)."""
    user = current_user()
    return user is not None and user.can(action)


def limits() -> Limits:
    """What an operator may not exceed from this browser (``[lts.limits]``, ``LTS_*`` variables)."""
    return team_config().limits


def viewer_note(what: str) -> None:
    """Say why a control is missing, instead of leaving a viewer looking for it."""
    user = current_user()
    who = f"{user.role} {user.name}" if user else "not signed in"
    st.caption(f":material/lock: Signed in as {who}: {what} needs the operator role.")


# The cluster's devices change when a node joins or leaves: ask again after a while, not on every rerun
# (each question starts a short-lived Ray driver subprocess: seconds, longer for an unreachable address,
# so a failure is kept for the same while as an answer).
@st.cache_data(ttl=30, show_spinner="Asking the Ray cluster for its devices...", max_entries=8)
def _ray_listing(address: str) -> tuple[list[RayDevice], str | None]:
    from lts.cost.remote import list_ray_devices

    try:
        return list_ray_devices(address), None
    except LtsError as exc:
        return [], str(exc)


def ray_devices(address: str) -> list[RayDevice]:
    """The device resources of the Ray cluster at ``address`` (asked at most every 30 s); LtsError in one
    line when Ray is not installed or the cluster cannot be reached. :func:`forget_ray_devices` asks again."""
    devices, error = _ray_listing(address)
    if error is not None:
        raise LtsError(error)
    return devices


def forget_ray_devices() -> None:
    _ray_listing.clear()


def _oidc_user(cfg: TeamConfig) -> User | None:
    if not cfg.oidc or not getattr(st.user, "is_logged_in", False):
        return None
    return cfg.oidc_user(dict(st.user))


def _sign_in_form(cfg: TeamConfig) -> None:
    st.title("Sign in")
    for provider in cfg.oidc_providers:
        label = f"Sign in with {provider}" if provider else "Sign in"
        if st.button(label, key=f"lts_login_{provider or 'default'}", type="primary"):
            if provider:
                st.login(provider)
            else:
                st.login()
    if cfg.users:
        with st.form("lts_sign_in"):
            name = st.text_input("User name", key="lts_sign_in_name")
            password = st.text_input("Password", type="password", key="lts_sign_in_password")
            if st.form_submit_button("Sign in", type="primary"):
                limiter = sign_in_limiter()
                admission = limiter.admit(name, _client_address())
                if not admission.allowed:  # refused before the hash: guessing costs the guesser, not the server
                    st.error(admission.reason)
                    return
                time.sleep(admission.wait_s)  # the back-off after recent failures of this name or client
                user = authenticate(cfg.users, name, password)
                limiter.record(admission, user is not None)
                if user is None:
                    st.error("Wrong user name or password.")
                else:
                    st.session_state[USER_KEY] = user.to_dict()
                    st.rerun()


def sign_out() -> None:
    user = current_user()
    st.session_state.pop(USER_KEY, None)
    if user is not None and user.via == "oidc":
        st.logout()


def _known_user(cfg: TeamConfig) -> User | None:
    """Who is signed in for this run, with today's role (nothing drawn)."""
    stored = current_user()
    if stored is not None and stored.via == "password" and stored.name in cfg.users:
        return User(stored.name, cfg.users[stored.name]["role"], "password")
    return _oidc_user(cfg)  # an OIDC identity is read from Streamlit's cookie every run (it may have signed out)


def _address(address: str | None) -> str | None:
    return address if address is not None else st.get_option("server.address")


def may_enter(address: str | None = None) -> bool:
    """Whether :func:`gate` will let this run through (nothing drawn): the app shows its page
    navigation only then, so nobody learns the pages before signing in."""
    try:
        cfg = team_config()
    except LtsError:
        return False
    if not exposure(_address(address), cfg, allow_from_env()).ok:
        return False
    return not cfg.sign_in_configured or _known_user(cfg) is not None


def _older_multipage_mode() -> bool:
    """Whether Streamlit runs this script in its older multipage mode (see :func:`leave_older_multipage_mode`)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without that mode
        return False
    return bool(PagesManager.uses_pages_directory)


def leave_older_multipage_mode() -> None:
    """First thing in ``app.py``: rerun at once if Streamlit ran it in its older multipage mode.

    With a ``pages/`` folder beside ``app.py``, Streamlit starts in its older multipage mode and stays
    there until ``app.py`` calls ``st.navigation``: the first run of a server process runs ``app.py``
    as one page among others (its widgets get other ids than in every later run, so a sign-in typed
    then would be dropped once), and a deep link such as ``/data`` runs ``pages/data.py`` without
    ``app.py`` at all (see :func:`gate_if_page_ran_alone`). Rerunning before anything is drawn costs
    nothing and the rest of the server's life runs as usual. lts's own pages live in ``dashboard/views/``
    so this never triggers there; it guards a deployment that adds a ``pages/`` folder."""
    if _older_multipage_mode():
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False  # what st.navigation does: the rerun goes through app.py
        st.rerun()


def gate_if_page_ran_alone() -> None:
    """First thing in every page (``common.store``): :func:`gate` if Streamlit ran the page without ``app.py``.

    That happens for a deep link (``/data``) in Streamlit's older multipage mode, before ``app.py`` has
    run in the server process; the page then stops at the sign-in form (or the refusal) as well. It
    neither reruns nor leaves that mode: either would drop the widget values the run came with, or
    give the page's widgets other ids in the next run (the first visit of the root URL leaves it)."""
    if _older_multipage_mode():
        gate()


def gate(address: str | None = None, cfg: TeamConfig | None = None) -> User:
    """Refuse, warn or sign in, then return the user; stops the script until someone is signed in.

    ``address`` defaults to the server's ``server.address`` option. With no sign-in configured
    (loopback, or beyond it with --allow-unauthenticated) everyone is an operator.
    """
    try:
        cfg = cfg or team_config()
    except LtsError as exc:
        _guard_uploads(None)
        st.error(f"Team settings in .streamlit/secrets.toml: {exc}")
        st.stop()
        raise
    decision = exposure(_address(address), cfg, allow_from_env())
    if not decision.ok:
        _guard_uploads(None)
        st.error(decision.refused)
        st.stop()
    if decision.warning:
        st.warning(decision.warning, icon=":material/warning:")
    if not cfg.sign_in_configured:
        user = User("anyone" if decision.warning else "local", OPERATOR, "open" if decision.warning else "local")
        st.session_state[USER_KEY] = user.to_dict()
        _guard_uploads(user)
        return user
    user = _known_user(cfg)
    _guard_uploads(user)  # before anything is drawn: a session not signed in keeps no uploads
    if user is None and cfg.oidc and getattr(st.user, "is_logged_in", False):
        st.error(f"{st.user.get('email') or 'This account'} has no role on this dashboard; ask an operator.")
        if st.button("Sign out", key="lts_sign_out_norole"):
            st.logout()
        st.stop()
    if user is None:
        st.session_state.pop(USER_KEY, None)  # a removed password user is signed out
        _sign_in_form(cfg)
        st.stop()
        raise RuntimeError("unreachable")  # st.stop ends the script run
    st.session_state[USER_KEY] = user.to_dict()
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        if st.button("Sign out", key="lts_sign_out"):
            sign_out()
            st.rerun()
    return user
