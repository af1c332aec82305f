"""The Streamlit side of team use (dashboard/team_page.py), in AppTest: refusal, warning, sign-in, what each role may do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from helpers import FAKE_DEVICE
from lts.search.runner import SearchSettings, create_run
from lts.store.db import Store
from lts.team.audit import entries
from lts.team.auth import hash_password

sys.path.append(str(Path(__file__).resolve().parents[1] / "dashboard"))  # `import team_page`, as the pages do


def app(db: str, address: str) -> None:
    """A page that deletes a run through the guarded call, as dashboard pages do."""
    import streamlit as st

    from lts.errors import LtsError
    from lts.store.db import Store
    from lts.team import guarded
    from team_page import can, current_user, gate

    user = gate(address=address)
    st.markdown(f"user: {user.name} ({user.role}, {user.via})")
    store = Store(db)
    run_id = store.runs()[0]["run_id"] if store.runs() else None
    st.markdown(f"can delete: {can('delete')}")
    if run_id and st.button("Delete", key="delete"):  # shown to everyone: the call itself checks the role
        try:
            guarded.delete_run(current_user(), store, run_id)
        except LtsError as exc:
            st.error(str(exc))
        else:
            st.success(f"deleted {run_id}")


@pytest.fixture(autouse=True)
def keep_main_module():
    """Streamlit runs the script as ``__main__`` and leaves it there; multiprocessing's spawn in a later
    test of this process would then re-run this temporary script (where ``__args`` is undefined)."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def fresh_limiter():
    """The sign-in limiter is one per process (st.cache_resource): each test starts with no failures."""
    from team_page import sign_in_limiter

    sign_in_limiter.clear()
    yield
    sign_in_limiter.clear()


@pytest.fixture(scope="module")
def users():
    return {"vera": {"role": "viewer", "password_hash": hash_password("vera-secret-1")},
            "otto": {"role": "operator", "password_hash": hash_password("otto-secret-1")}}


@pytest.fixture
def db(tmp_path):
    from conftest import small_space

    path = tmp_path / "t.db"
    create_run(Store(path), SearchSettings(space=small_space("gpt2"), budget=1), FAKE_DEVICE, "fake-b1")
    return str(path)


def _app(db, address="0.0.0.0", users=None) -> AppTest:
    at = AppTest.from_function(app, args=(db, address), default_timeout=30)
    if users is not None:
        at.secrets["lts"] = {"users": users}
    return at.run()


def _texts(at) -> list[str]:
    return [m.value for m in at.markdown]


def test_no_sign_in_beyond_loopback_is_refused(db, monkeypatch):
    monkeypatch.delenv("LTS_ALLOW_UNAUTHENTICATED", raising=False)
    at = _app(db)
    assert "refusing to serve on 0.0.0.0 without sign-in" in at.error[0].value
    assert not any(t.startswith("user:") for t in _texts(at))


def test_allow_unauthenticated_warns_on_the_page(db, monkeypatch):
    monkeypatch.setenv("LTS_ALLOW_UNAUTHENTICATED", "1")
    at = _app(db)
    assert "without sign-in" in at.warning[0].value and "user: anyone (operator, open)" in _texts(at)


def test_loopback_without_sign_in_is_the_single_user_default(db, monkeypatch):
    monkeypatch.delenv("LTS_ALLOW_UNAUTHENTICATED", raising=False)
    at = _app(db, address="127.0.0.1")
    assert not at.warning and "user: local (operator, local)" in _texts(at)


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="lts_sign_in_name").input(name)
    at.text_input(key="lts_sign_in_password").input(password)
    at.button[0].click()  # the form's submit button
    return at.run()


def test_sign_in_with_a_password(db, users):
    at = _app(db, users=users)
    assert at.title[0].value == "Sign in" and not any(t.startswith("user:") for t in _texts(at))
    at = _sign_in(at, "vera", "wrong-password")
    assert at.error[0].value == "Wrong user name or password."
    at = _sign_in(at, "nobody", "vera-secret-1")
    assert at.error[0].value == "Wrong user name or password."
    at = _sign_in(at, "vera", "vera-secret-1")
    assert "user: vera (viewer, password)" in _texts(at)


def test_a_signed_in_viewer_cannot_delete_and_an_operator_can(db, users):
    at = _sign_in(_app(db, users=users), "vera", "vera-secret-1")
    assert "can delete: False" in _texts(at)
    at.button(key="delete").click().run()
    assert at.error[0].value == "viewer vera may not delete runs"
    assert len(Store(db).runs()) == 1

    at = _sign_in(_app(db, users=users), "otto", "otto-secret-1")
    assert "user: otto (operator, password)" in _texts(at) and "can delete: True" in _texts(at)
    at.button(key="delete").click().run()
    assert at.success[0].value.startswith("deleted ") and Store(db).runs() == []
    assert [(r["user"], r["outcome"]) for r in entries(Store(db))] == [("otto", "ok"), ("vera", "denied")]

    at.sidebar.button(key="lts_sign_out").click().run()
    assert at.title[0].value == "Sign in"


def test_failed_sign_ins_count_across_sessions(db, users, monkeypatch):
    """A reload is a new session: the failures of one count in the next (per name, and per client)."""
    import team_page as page
    from lts.team.auth import SignInLimiter

    made: list[SignInLimiter] = []

    def limiter() -> SignInLimiter:
        made.append(SignInLimiter(base_delay_s=0.0))  # no back-off waits in the test
        return made[-1]

    monkeypatch.setattr(page, "SignInLimiter", limiter)
    monkeypatch.setattr(page, "_client_address", lambda: "203.0.113.7")  # both sessions from one browser
    first = _app(db, users=users)
    for _ in range(5):
        first = _sign_in(first, "vera", "wrong-password")
        assert first.error[0].value == "Wrong user name or password."
    first = _sign_in(first, "vera", "vera-secret-1")
    assert first.error[0].value == "Too many failed sign-ins for vera: try again in 5 min."

    second = _sign_in(_app(db, users=users), "vera", "vera-secret-1")  # right, but too late for this name
    assert second.error[0].value == "Too many failed sign-ins for vera: try again in 5 min."
    assert not any(t.startswith("user:") for t in _texts(second))
    second = _sign_in(second, "otto", "otto-secret-1")  # another name from the same client: 5 of 20
    assert "user: otto (operator, password)" in _texts(second)
    assert len(made) == 1  # one limiter for both sessions
    assert made[0].failures(name="vera") == 5 and made[0].failures(client="203.0.113.7") == 5
