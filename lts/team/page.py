"""The Streamlit side of team use: the sign-in gate, the exposure warning, the current user.

Call :func:`gate` once at the top of ``dashboard/app.py`` (it runs before every page)::

    from lts.team.page import gate
    user = gate()          # stops the page with a sign-in form until someone is signed in

then, in a page, :func:`current_user` and :func:`team_config` give what the guarded calls need::

    from lts.team import guarded
    from lts.team.page import current_user, team_config
    guarded.launch_search(current_user(), store, db_path, space, device, limits=team_config().limits, budget=50)

Sessions: a password sign-in lasts for the browser session (``st.session_state``; a reload asks
again); an OIDC sign-in lasts as long as Streamlit's identity cookie.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from lts.errors import LtsError
from lts.team.auth import OPERATOR, User, authenticate
from lts.team.config import TeamConfig, secrets_files
from lts.team.serve import allow_from_env, exposure

USER_KEY = "lts_user"
FAILED_KEY = "lts_failed_sign_ins"


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
                failed = st.session_state.get(FAILED_KEY, 0)
                time.sleep(min(0.25 * 2**failed, 4.0) if failed else 0)  # slows guessing in this session
                user = authenticate(cfg.users, name, password)
                if user is None:
                    st.session_state[FAILED_KEY] = failed + 1
                    st.error("Wrong user name or password.")
                else:
                    st.session_state.pop(FAILED_KEY, None)
                    st.session_state[USER_KEY] = user.to_dict()
                    st.rerun()


def sign_out() -> None:
    user = current_user()
    st.session_state.pop(USER_KEY, None)
    if user is not None and user.via == "oidc":
        st.logout()


def gate(address: str | None = None, cfg: TeamConfig | None = None) -> User:
    """Refuse, warn or sign in, then return the user; stops the script until someone is signed in.

    ``address`` defaults to the server's ``server.address`` option. With no sign-in configured
    (loopback, or beyond it with --allow-unauthenticated) everyone is an operator.
    """
    try:
        cfg = cfg or team_config()
    except LtsError as exc:
        st.error(f"Team settings in .streamlit/secrets.toml: {exc}")
        st.stop()
        raise
    address = address if address is not None else st.get_option("server.address")
    decision = exposure(address, cfg, allow_from_env())
    if not decision.ok:
        st.error(decision.refused)
        st.stop()
    if decision.warning:
        st.warning(decision.warning, icon=":material/warning:")
    if not cfg.sign_in_configured:
        user = User("anyone" if decision.warning else "local", OPERATOR, "open" if decision.warning else "local")
        st.session_state[USER_KEY] = user.to_dict()
        return user
    stored = current_user()
    if stored is not None and stored.via == "password" and stored.name in cfg.users:
        user: User | None = User(stored.name, cfg.users[stored.name]["role"], "password")  # today's role
    else:  # an OIDC identity is read from Streamlit's cookie every run (it may have signed out)
        user = _oidc_user(cfg)
    if user is None and cfg.oidc and getattr(st.user, "is_logged_in", False):
        st.error(f"{st.user.get('email') or 'This account'} has no role on this dashboard; ask an operator.")
        if st.button("Sign out", key="lts_sign_out_norole"):
            st.logout()
        st.stop()
    if user is None:
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
