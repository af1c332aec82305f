"""Team use in the real dashboard (AppTest on dashboard/app.py): sign-in, what a viewer and an operator
may do on the Search, Data, Measurements, Validation and Audit pages, limits in the forms, queue
positions, the Ray device picker, and the refusal to serve beyond loopback without sign-in."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.store.db import Store
from lts.team import guarded
from lts.team.audit import entries
from lts.team.auth import PermissionDenied, User, hash_password
from lts.team.limits import LimitExceeded, Limits

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PROTOCOL = "torch-cpu-b1-sdefault-t1"


@pytest.fixture(autouse=True)
def keep_main_module():
    """Streamlit leaves the script it ran as ``__main__``; a later test's spawned workers would re-run it."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def _serve_on(address: str | None):
    """The server's address as app.py reads it (st.get_option), whatever .streamlit/config.toml says."""
    old = config.get_option("server.address")
    config.set_option("server.address", address)
    return old


@pytest.fixture
def loopback():
    old = _serve_on("127.0.0.1")
    yield
    config.set_option("server.address", old)


@pytest.fixture
def everywhere(monkeypatch):
    monkeypatch.delenv("LTS_ALLOW_UNAUTHENTICATED", raising=False)
    old = _serve_on("0.0.0.0")
    yield
    config.set_option("server.address", old)


@pytest.fixture(scope="module")
def users():
    return {"vera": {"role": "viewer", "password_hash": hash_password("vera-secret-1")},
            "otto": {"role": "operator", "password_hash": hash_password("otto-secret-1")}}


@pytest.fixture
def db(tmp_path, monkeypatch):
    """One finished search with measurements on the fake device."""
    path = tmp_path / "lts.db"
    s = Store(path)
    run = create_run(s, SearchSettings(space=small_space("gpt2"), budget=4, seed=1), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, run, measure=FakeMeasure()).run_to_end()
    monkeypatch.setenv("LTS_DB", str(path))
    return path


@pytest.fixture
def no_spawn(monkeypatch):
    """Launches start nothing: the 'process' is this test's (alive, so it counts as running)."""
    launched: list[list[str]] = []

    def fake_search(db_path, run_id, log_dir=None):
        launched.append(["search", run_id])
        return os.getpid()

    def fake_detached(args, db_path, log_name, log_dir=None):
        launched.append(list(args))
        return os.getpid()

    monkeypatch.setattr("lts.search.session.launch_background", fake_search)
    monkeypatch.setattr("lts.search.session.spawn_detached", fake_detached)
    monkeypatch.setattr("lts.jobs.process.spawn_detached", fake_detached)
    return launched


def _app(secrets: dict | None, user: str | None = None, users: dict | None = None, page: str | None = None) -> AppTest:
    """app.py with ``secrets`` (no sign-in when None), optionally with ``user`` signed in, on ``page``."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["lts"] = dict((secrets or {}).get("lts", {}))  # also hides a developer's own secrets.toml
    if user is not None:
        at.session_state["lts_user"] = {"name": user, "role": users[user]["role"], "via": "password"}
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def _device_name(s: Store, run_id: str) -> str:
    return {r["run_id"]: r["device_name"] for r in s.runs()}[run_id]


def _me(at: AppTest) -> User:
    return User.from_dict(at.session_state["lts_user"])


# -- sign-in -------------------------------------------------------------------------------------
def test_sign_in_through_the_password_form_then_the_search_page(loopback, db, users):
    at = _app({"lts": {"users": users}})
    assert at.title[0].value == "Sign in" and "Search" not in [t.value for t in at.title]
    # AppTest puts Streamlit back into its older multipage mode before every run, so the first run's
    # widgets get other ids than the next ones' (a server leaves that mode in its first run): one more
    # run before typing, as a browser's reconnect would be.
    at.run()
    at.text_input(key="lts_sign_in_name").input("otto")
    at.text_input(key="lts_sign_in_password").input("otto-secret-1")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Search"]
    assert "Signed in as **otto** (operator)" in " ".join(c.value for c in at.sidebar.caption)
    at.sidebar.button(key="lts_sign_out").click().run()
    assert at.title[0].value == "Sign in"


def test_a_deep_link_before_sign_in_meets_the_form(loopback, db, users):
    """Streamlit's older multipage mode runs views/data.py without app.py; the page gates itself."""
    for page in ("views/data.py", "views/audit.py", "views/search.py"):
        at = _app({"lts": {"users": users}}, page=page)
        assert [t.value for t in at.title] == ["Sign in"], page
        assert not at.dataframe and not at.get("file_uploader")


def test_oidc_identity_gets_its_role_by_email(loopback, db):
    secrets = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
                        "client_id": "i", "client_secret": "c", "server_metadata_url": "https://idp/.well-known"},
               "lts": {"roles": {"alice@example.org": "operator"}, "default_role": "viewer"}}
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets.update(secrets)
    at.run()
    assert at.title[0].value == "Sign in" and "Sign in" in _labels(at)  # the provider's button (st.login)
    for email, role, can_start in [("alice@example.org", "operator", True), ("bob@example.org", "viewer", False)]:
        at = AppTest.from_file(APP, default_timeout=60)
        at.secrets.update(secrets)
        at.user = {"is_logged_in": True, "email": email}
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert f"Signed in as **{email}** ({role})" in " ".join(c.value for c in at.sidebar.caption)
        assert ("Start search" in _labels(at)) is can_start


# -- serving beyond loopback --------------------------------------------------------------------------
def test_beyond_loopback_without_sign_in_every_page_is_refused(everywhere, db):
    for page in (None, "views/data.py", "views/audit.py"):
        at = _app(None, page=page)
        assert "refusing to serve on 0.0.0.0 without sign-in" in at.error[0].value, page
        assert not at.title and not at.button


def test_allowed_without_sign_in_every_page_warns(everywhere, db, monkeypatch):
    monkeypatch.setenv("LTS_ALLOW_UNAUTHENTICATED", "1")
    for page in (None, "views/data.py", "views/measurements.py"):
        at = _app(None, page=page)
        assert "without sign-in" in at.warning[0].value and at.title, page


def test_beyond_loopback_with_sign_in_serves_after_sign_in(everywhere, db, users):
    at = _app({"lts": {"users": users}}, user="vera", users=users, page="views/data.py")
    assert [t.value for t in at.title] == ["Data"] and not at.warning


# -- a viewer ---------------------------------------------------------------------------------------
def test_a_viewer_sees_no_controls_and_the_library_refuses_her(loopback, db, users):
    secrets = {"lts": {"users": users}}
    at = _app(secrets, "vera", users)
    assert at.title[0].value == "Search" and not {"Start search", "Run a demo search", "Cancel"} & _labels(at)
    assert "starting a search needs the operator role" in _captions(at)
    at = _app(secrets, "vera", users, "views/data.py")
    assert not at.get("file_uploader") and "Delete run" not in _labels(at)
    assert at.get("download_button") or [m for m in at.multiselect if m.label == "Runs"]  # export: still allowed
    at = _app(secrets, "vera", users, "views/measurements.py")
    assert at.dataframe and "Re-measure" not in _labels(at)
    at = _app(secrets, "vera", users, "views/validation.py")
    assert "Start validation" not in _labels(at)

    # Reaching the calls anyway (a hidden button is no protection): refused, nothing changed, audited.
    from lts.decide.remeasure import RemeasureRequest

    s, vera = Store(db), _me(at)
    run_id = s.runs()[0]["run_id"]
    arch = s.query("SELECT arch_id FROM measurements LIMIT 1")[0]["arch_id"]
    for call in (lambda: guarded.launch_search(vera, s, db, small_space("gpt2"), None, limits=Limits(), budget=2,
                                               objectives="proxy"),
                 lambda: guarded.delete_run(vera, s, run_id),
                 lambda: guarded.import_bundle(vera, s, b"{}", "b.json", limits=Limits()),
                 lambda: guarded.queue_remeasure(vera, s, db, RemeasureRequest((arch,), "here"), limits=Limits())):
        with pytest.raises(PermissionDenied, match="^viewer vera may not "):
            call()
    assert len(s.runs()) == 1
    at = _app(secrets, "vera", users, "views/audit.py")
    table = at.dataframe[0].value
    assert list(table["outcome"]) == ["denied"] * 4 and set(table["user"]) == {"vera"}
    assert set(table["action"]) == {"launch_search", "delete_run", "import_bundle", "remeasure"}
    assert "4 denied" in _captions(at)


# -- an operator --------------------------------------------------------------------------------------
def _their_bundle(tmp_path: Path) -> tuple[str, bytes]:
    """Another machine's finished run (budget 3) as a bundle."""
    from lts.store.bundle import export_runs

    theirs = Store(tmp_path / "theirs.db")
    other = {**FAKE_DEVICE, "device_id": "fa4edeadbeef00aa", "name": "their-laptop"}
    run = create_run(theirs, SearchSettings(space=small_space("gpt2"), budget=3, seed=7), other, PROTOCOL)
    SearchRunner(theirs, run, measure=FakeMeasure()).run_to_end()
    return run, json.dumps(export_runs(theirs, [run])).encode()


def _import(at: AppTest, bundle: bytes) -> AppTest:
    at.get("file_uploader")[0].upload("theirs.json", bundle, "application/json")
    at.run()
    return at.button(key="import_btn").click().run()


def test_an_operator_launches_cancels_imports_deletes_and_the_audit_shows_it(loopback, db, users, no_spawn, tmp_path):
    secrets = {"lts": {"users": users, "limits": {"max_budget": 30, "max_concurrent_searches": 1}}}
    at = _app(secrets, "otto", users)
    budget = [n for n in at.number_input if n.label.startswith("Budget")][0]
    assert budget.max == 30 and budget.value == 30  # the form's bounds follow the limits
    [m for m in at.multiselect if m.label == "Objectives"][0].set_value(["proxy"])
    budget.set_value(5)
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    launched = no_spawn[0][1]
    assert s.run(launched)["budget"] == 5 and s.run(launched)["pid"] == os.getpid()
    assert "Running (1)" in [h.value for h in at.subheader]

    # the limit of one search at a time holds from the browser
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert "1 searches already running, this dashboard's limit is 1" in at.error[0].value
    with pytest.raises(LimitExceeded, match="budget 31 is over"):
        guarded.launch_search(_me(at), s, db, small_space("gpt2"), None, limits=Limits(max_budget=30), budget=31,
                              objectives="proxy")

    at.button(key=f"cancel-{launched}").click().run()
    assert s.run(launched)["status"] == "cancelled"

    # import a bundle of another machine's run, then delete the cancelled run
    run, bundle = _their_bundle(tmp_path)
    at = _import(_app(secrets, "otto", users, "views/data.py"), bundle)
    assert at.success[0].value.startswith("Imported: 1 new runs"), [e.value for e in at.error]
    assert _device_name(s, run) == "their-laptop"
    assert at.selectbox(key="delete_run_pick").value is None  # nothing preselected
    assert at.button(key="delete_run_btn").disabled
    at.selectbox(key="delete_run_pick").set_value(launched).run()
    assert at.button(key="delete_run_btn").disabled  # not before the confirmation
    at.checkbox(key="delete_run_confirm").check().run()
    at.button(key="delete_run_btn").click().run()
    assert any(m.value.startswith(f"Deleted run {launched}") for m in at.success)
    assert launched not in {r["run_id"] for r in s.runs()}

    at = _app(secrets, "otto", users, "views/audit.py")
    table = at.dataframe[0].value
    assert list(zip(table["action"], table["outcome"])) == [
        ("delete_run", "ok"), ("import_bundle", "ok"), ("cancel_search", "ok"), ("launch_search", "denied"),
        ("launch_search", "denied"), ("launch_search", "ok")]
    assert set(table["user"]) == {"otto"} and table["target"].iloc[0] == launched
    at.selectbox(key="audit_action").set_value("launch_search").run()
    assert list(at.dataframe[0].value["outcome"]) == ["denied", "denied", "ok"]


def test_rerunning_an_imported_run_is_a_guarded_launch(loopback, db, users, no_spawn, tmp_path):
    source, bundle = _their_bundle(tmp_path)
    at = _import(_app({"lts": {"users": users, "limits": {"max_budget": 2}}}, "otto", users, "views/data.py"), bundle)
    at.text_input(key="rerun_device").input("this-host")
    at.button(key="rerun_btn").click().run()
    assert "budget 3 is over this dashboard's limit of 2" in at.error[0].value and not no_spawn

    at = _import(_app({"lts": {"users": users}}, "otto", users, "views/data.py"), bundle)
    at.text_input(key="rerun_device").input("this-host")
    at.button(key="rerun_btn").click().run()
    s = Store(db)
    rerun = no_spawn[0][1]
    assert any(m.value == f"Run {rerun} reproduces {source}; follow it on the Search page." for m in at.success)
    assert s.run(rerun)["reproduces"] == source and s.run(rerun)["pid"] == os.getpid()
    launches = entries(s, action="launch_search")
    assert [(r["outcome"], r["target"]) for r in launches] == [("ok", rerun), ("denied", f"re-run of {source}")]
    assert launches[0]["detail"]["reproduces"] == source

    at = _app({"lts": {"users": users}}, "vera", users, "views/data.py")
    assert "Re-run here" not in _labels(at)
    with pytest.raises(PermissionDenied, match="viewer vera may not launch searches"):
        guarded.reproduce_search(_me(at), s, db, source, "this-host", limits=Limits())


def test_uploads_over_the_limit_are_refused(loopback, db, users):
    secrets = {"lts": {"users": users, "limits": {"max_upload_mb": 0.001}}}
    at = _app(secrets, "otto", users, "views/data.py")
    at.get("file_uploader")[0].upload("big.json", b"{" + b" " * 4096 + b"}", "application/json")
    at.run()
    at.button(key="import_btn").click().run()
    assert "over this dashboard's limit of 0.001 MB" in at.error[0].value
    assert [(r["action"], r["outcome"]) for r in entries(Store(db))] == [("import_bundle", "denied")]


def test_the_validation_form_follows_the_limits(loopback, db, users):
    secrets = {"lts": {"users": users, "limits": {"max_validation_archs": 6, "max_validation_steps": 40}}}
    at = _app(secrets, "otto", users, "views/validation.py")
    archs = [n for n in at.number_input if n.label == "Architectures"][0]
    steps = [n for n in at.number_input if n.label.startswith("Steps")][0]
    assert (archs.max, archs.value, steps.max, steps.value) == (6, 6, 40, 40)


# -- queue positions -----------------------------------------------------------------------------------
def test_a_search_waiting_for_its_device_shows_its_queue_position(loopback, db):
    s = Store(db)
    run = create_run(s, SearchSettings(space=small_space("gpt2"), budget=4), FAKE_DEVICE, PROTOCOL)
    with s.write() as conn:
        conn.execute("UPDATE runs SET status = 'running', pid = ?, message = 'queued (position 2)' WHERE run_id = ?",
                     (os.getpid(), run))
    at = _app(None)
    assert "queued (position 2): waiting for the device" in _captions(at)
    assert any("queued (position 2)" in p.proto.text for p in at.get("progress"))


def test_a_remeasure_job_reports_its_queue_position_and_goes_through_the_guarded_call(loopback, db, users, no_spawn):
    from lts.decide.remeasure import job_queue_reporter

    secrets = {"lts": {"users": users, "limits": {"max_budget": 2}}}
    at = _app(secrets, "otto", users, "views/measurements.py")
    picks = [m for m in at.multiselect if m.label == "Architectures"][0]
    assert picks.max_selections == 2
    picks.set_value(picks.options[:1]).run()
    at.button(key="remeasure_btn").click().run()
    assert not at.error, [e.value for e in at.error]
    s = Store(db)
    job = s.query("SELECT job_id FROM remeasure_jobs")[0]["job_id"]
    assert no_spawn[0][0] == "remeasure" and no_spawn[0][-4:-2] == ["--job", job]
    assert [(r["action"], r["outcome"], r["target"]) for r in entries(s)] == [("remeasure", "ok", job)]

    on_wait = job_queue_reporter(s, job)
    on_wait(3)
    at.run()
    assert f"job `{job}` queued (position 3)" in _captions(at)
    on_wait(0)
    assert s.query("SELECT message FROM remeasure_jobs")[0]["message"] is None


# -- Ray devices -----------------------------------------------------------------------------------------
def test_the_device_picker_lists_a_ray_clusters_devices_and_launches_there(loopback, db, no_spawn, monkeypatch):
    from lts.cost.device import DeviceRecord
    from lts.cost.remote import RayDevice

    asked: list[str] = []

    def devices(address):
        asked.append(address)
        return [RayDevice("jetson-orin", 1, 1.0, ("orin-01",)), RayDevice("pi5", 1, 1.0, ("pi-01",))]

    monkeypatch.setattr("lts.cost.remote.list_ray_devices", devices)
    monkeypatch.setattr("lts.cost.remote.detect_ray_device", lambda address, name, kind="cpu", threads=1:
                        DeviceRecord.from_dict({**FAKE_DEVICE, "device_id": "fa4edeadbeef0ray", "name": name}))
    at = _app(None)
    address = f"ray-head-{os.getpid()}-{id(at)}:6379"  # the listing is cached per address
    at.text_input(key="ray_address").input(address).run()
    pick = at.selectbox(key="ray_device")
    assert pick.options == ["jetson-orin", "pi5"] and asked == [address]
    pick.set_value("pi5")
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.error, [e.value for e in at.error]
    s = Store(db)
    run = s.run(no_spawn[0][1])
    assert _device_name(s, run["run_id"]) == "pi5"
    assert json.loads(run["settings_json"])["remote"] == {"ray_address": address, "device_name": "pi5"}
    assert asked == [address]  # reruns read the cached listing


def test_an_unreachable_ray_cluster_is_one_line_and_launches_nothing(loopback, db, monkeypatch):
    from lts.errors import LtsError

    asked: list[str] = []

    def unreachable(address):
        asked.append(address)
        raise LtsError(f"cannot reach the Ray cluster at {address!r}: connection refused")

    monkeypatch.setattr("lts.cost.remote.list_ray_devices", unreachable)
    at = _app(None)
    at.text_input(key="ray_address").input(f"nowhere-{os.getpid()}-{id(at)}:6379").run()
    assert "cannot reach the Ray cluster" in at.error[0].value
    assert [b for b in at.button if b.label == "Start search"][0].disabled
    at.run()
    assert len(asked) == 1  # a failure is kept a while too: an unreachable address can take long to answer
    at.button(key="ray_refresh").click().run()
    assert len(asked) == 2 and "cannot reach the Ray cluster" in at.error[0].value
