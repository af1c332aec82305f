"""Team use at the library level: password hashes, roles, limits, the audit trail, guarded calls, lts serve."""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers import FAKE_DEVICE
from lts.cli import main
from lts.errors import LtsError
from lts.store.db import Store
from lts.team import guarded
from lts.team.audit import audit_frame, entries
from lts.team.auth import (PermissionDenied, User, authenticate, check_hash_format, hash_password, require,
                           verify_password)
from lts.team.config import TeamConfig, load_team_config
from lts.team.limits import LimitExceeded, Limits
from lts.team.serve import Exposure, ServeOptions, build_command, exposure, is_loopback

VIEWER = User("vera", "viewer", "password")
OPERATOR = User("otto", "operator", "password")


@pytest.fixture(scope="module")
def hashes():
    return {"vera": hash_password("vera-secret-1"), "otto": hash_password("otto-secret-1")}


@pytest.fixture
def secrets(hashes):
    return {"lts": {"users": {"vera": {"role": "viewer", "password_hash": hashes["vera"]},
                              "otto": {"role": "operator", "password_hash": hashes["otto"]}}}}


# -- passwords and roles ----------------------------------------------------------------------
def test_password_hashes_are_salted_and_checked(hashes):
    h = hashes["vera"]
    assert h.startswith("scrypt$16384$8$1$") and "vera-secret-1" not in h
    assert hash_password("vera-secret-1") != h  # a fresh salt each time
    assert verify_password("vera-secret-1", h) and not verify_password("vera-secret-2", h)
    with pytest.raises(LtsError, match="at least 8 characters"):
        hash_password("short")
    for bad in ("plain-text", "scrypt$16384$8$1$not base64!$x", "scrypt$1000$8$1$AA==$AA=="):
        with pytest.raises(LtsError):
            check_hash_format(bad)


def test_authenticate_does_not_tell_which_names_exist(secrets):
    users = TeamConfig.from_secrets(secrets).users
    assert authenticate(users, "otto", "otto-secret-1") == OPERATOR
    assert authenticate(users, "otto", "vera-secret-1") is None
    assert authenticate(users, "nobody", "otto-secret-1") is None  # costs a decoy hash, same as a known name


def test_roles_are_checked_with_one_line():
    assert require(OPERATOR, "delete") is OPERATOR
    assert require(VIEWER, "download") is VIEWER
    with pytest.raises(PermissionDenied, match="^viewer vera may not launch searches$"):
        require(VIEWER, "launch")
    with pytest.raises(PermissionDenied, match="^sign in to import bundles$"):
        require(None, "import")
    with pytest.raises(LtsError, match="unknown role"):
        User("x", "admin", "password")


# -- settings ---------------------------------------------------------------------------------------
def test_team_config_from_secrets(secrets):
    cfg = TeamConfig.from_secrets(secrets)
    assert cfg.sign_in_configured and not cfg.oidc and set(cfg.users) == {"vera", "otto"}
    assert not TeamConfig.from_secrets({}).sign_in_configured
    oidc = TeamConfig.from_secrets({
        "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                 "google": {"client_id": "i", "client_secret": "c", "server_metadata_url": "https://x/.well-known"}},
        "lts": {"roles": {"Alice@Example.org": "operator"}, "default_role": "viewer"}})
    assert oidc.oidc_providers == ("google",) and oidc.sign_in_configured
    assert oidc.oidc_user({"email": "alice@example.org"}) == User("alice@example.org", "operator", "oidc")
    assert oidc.oidc_user({"email": "bob@example.org"}).role == "viewer"
    closed = TeamConfig.from_secrets({"auth": {"redirect_uri": "r", "cookie_secret": "s", "client_id": "i",
                                               "client_secret": "c", "server_metadata_url": "u"},
                                      "lts": {"default_role": "none"}})
    assert closed.oidc_providers == (None,) and closed.oidc_user({"email": "bob@example.org"}) is None


@pytest.mark.parametrize("bad, message", [
    ({"lts": {"users": {"x": {"role": "viewer"}}}}, r"\[lts.users.x\] needs role and password_hash"),
    ({"lts": {"users": {"x": {"role": "admin", "password_hash": "scrypt$16384$8$1$AA==$AA=="}}}}, "role 'admin'"),
    ({"lts": {"users": {"x": {"role": "viewer", "password_hash": "hunter22"}}}}, r"\[lts.users.x\] password_hash must"),
    ({"auth": {"redirect_uri": "r"}}, r"\[auth\] lacks 'cookie_secret'"),
    ({"auth": {"redirect_uri": "r", "cookie_secret": "s"}}, "names no provider"),
    ({"lts": {"limits": {"max_budgets": 3}}}, "unknown limit 'max_budgets'"),
    ({"lts": {"limits": {"max_budget": -1}}}, "must be a positive number"),
])
def test_bad_team_settings_are_one_line(bad, message):
    with pytest.raises(LtsError, match=message):
        TeamConfig.from_secrets(bad)


def test_limits_from_secrets_and_environment():
    limits = Limits.from_mapping({"max_budget": 100, "max_upload_mb": 5}, env={"LTS_MAX_BUDGET": "40"})
    assert limits.max_budget == 40 and limits.max_upload_mb == 5.0 and limits.max_concurrent_searches == 2
    with pytest.raises(LimitExceeded, match="budget 41 is over this dashboard's limit of 40 evaluations"):
        limits.check_search(41, None)
    with pytest.raises(LimitExceeded, match="time budget 20000 s is over"):
        limits.check_search(None, 20000)
    with pytest.raises(LimitExceeded, match="limit of 5 MB"):
        limits.check_upload(6 * 2**20)
    with pytest.raises(LimitExceeded, match="2 searches already running, this dashboard's limit is 2"):
        limits.check_concurrent(2)


# -- guarded calls and the audit trail ---------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "t.db")


@pytest.fixture
def no_spawn(monkeypatch):
    """launch_background stands in for a live search process (this one)."""
    launched = []

    def fake(db_path, run_id, log_dir=None):
        launched.append(run_id)
        return os.getpid()

    monkeypatch.setattr("lts.search.session.launch_background", fake)
    return launched


def _search(user, store, tmp_path, limits=Limits(), budget=5):
    from conftest import small_space

    return guarded.launch_search(user, store, tmp_path / "t.db", small_space("gpt2"), None, limits=limits,
                                 budget=budget, objectives="proxy")


def test_a_viewer_may_look_but_not_act(store, tmp_path, no_spawn):
    run_id = _search(OPERATOR, store, tmp_path)
    before = store.db["runs"].count
    for call, match in [
        (lambda: _search(VIEWER, store, tmp_path), "viewer vera may not launch searches"),
        (lambda: guarded.cancel_search(VIEWER, store, run_id), "may not cancel searches"),
        (lambda: guarded.delete_run(VIEWER, store, run_id), "may not delete runs"),
        (lambda: guarded.import_bundle(VIEWER, store, b"{}", "b.json", limits=Limits()), "may not import bundles"),
        (lambda: guarded.delete_run(None, store, run_id), "^sign in to delete runs$"),
    ]:
        with pytest.raises(PermissionDenied, match=match):
            call()
    assert store.db["runs"].count == before and store.run(run_id)["status"] == "created"
    rows = entries(store)
    assert [r["outcome"] for r in rows] == ["denied"] * 5 + ["ok"]
    assert rows[-1]["action"] == "launch_search" and rows[-1]["target"] == run_id and rows[-1]["user"] == "otto"
    assert rows[0]["user"] == "(not signed in)" and "sign in" in rows[0]["detail"]["reason"]
    assert list(audit_frame(store).columns) == ["at", "user", "role", "via", "action", "target", "outcome", "detail"]


def test_an_operator_within_the_limits(store, tmp_path, no_spawn):
    limits = Limits(max_budget=10, max_concurrent_searches=1)
    with pytest.raises(LimitExceeded, match="budget 11 is over"):
        _search(OPERATOR, store, tmp_path, limits, budget=11)
    run_id = _search(OPERATOR, store, tmp_path, limits)
    assert no_spawn == [run_id] and store.run(run_id)["pid"] == os.getpid()
    with pytest.raises(LimitExceeded, match="1 searches already running"):
        _search(OPERATOR, store, tmp_path, limits)
    with pytest.raises(LtsError, match="cancel it before deleting"):
        with store.write() as conn:
            conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (run_id,))
        guarded.delete_run(OPERATOR, store, run_id)
    assert guarded.cancel_search(OPERATOR, store, run_id) == "cancelling"
    with store.write() as conn:
        conn.execute("UPDATE runs SET status = 'cancelled' WHERE run_id = ?", (run_id,))
    assert guarded.delete_run(OPERATOR, store, run_id)["runs"] == 1
    with pytest.raises(LtsError, match="no run"):
        store.run(run_id)
    outcomes = [(r["action"], r["outcome"]) for r in reversed(entries(store))]
    assert outcomes == [("launch_search", "denied"), ("launch_search", "ok"), ("launch_search", "denied"),
                        ("delete_run", "failed"), ("cancel_search", "ok"), ("delete_run", "ok")]


def test_imports_are_checked_for_size_and_audited(store, tmp_path):
    from lts.search.runner import SearchSettings, create_run
    from lts.store.bundle import export_runs

    from conftest import small_space

    source = Store(tmp_path / "source.db")
    run_id = create_run(source, SearchSettings(space=small_space("gpt2"), budget=1), FAKE_DEVICE, "fake-b1")
    data = json.dumps(export_runs(source, [run_id])).encode()
    with pytest.raises(LimitExceeded, match="over this dashboard's limit of 0.001 MB"):
        guarded.import_bundle(OPERATOR, store, data, "b.json", limits=Limits(max_upload_mb=0.001))
    added = guarded.import_bundle(OPERATOR, store, data, "b.json", limits=Limits())
    assert added["runs"] == 1 and store.run(run_id)
    with pytest.raises(LtsError, match="not a JSON file"):
        guarded.import_bundle(OPERATOR, store, b"nope", "bad.json", limits=Limits())
    rows = entries(store, action="import_bundle")
    assert [r["outcome"] for r in rows] == ["failed", "ok", "denied"] and rows[1]["detail"]["runs"] == 1


def test_validation_launches_are_role_and_limit_checked(store, tmp_path):
    from lts.validate.page import LaunchForm

    with pytest.raises(PermissionDenied, match="viewer vera may not launch validation runs"):
        guarded.launch_validation(VIEWER, store, tmp_path / "t.db", LaunchForm(), limits=Limits())
    with pytest.raises(LimitExceeded, match="30 architectures is over"):
        guarded.launch_validation(OPERATOR, store, tmp_path / "t.db", LaunchForm(n_archs=30), limits=Limits())
    with pytest.raises(PermissionDenied, match="may not cancel validation runs"):
        guarded.cancel_validation(VIEWER, store, "v1")


# -- lts serve: no exposure without sign-in ---------------------------------------------------------
def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "", None, "192.0.2.1", "::", "example.org"]))


def test_binding_beyond_loopback_needs_sign_in_or_the_flag(secrets):
    open_cfg, signed = TeamConfig(), TeamConfig.from_secrets(secrets)
    assert exposure("127.0.0.1", open_cfg, False).ok and not exposure("127.0.0.1", open_cfg, False).warning
    refused = exposure("0.0.0.0", open_cfg, False)
    assert not refused.ok and "refusing to serve on 0.0.0.0 without sign-in" in refused.refused
    assert exposure("0.0.0.0", open_cfg, True).warning and exposure("0.0.0.0", open_cfg, True).ok
    assert exposure("", open_cfg, False).refused  # "" = every interface
    assert exposure("0.0.0.0", signed, False) == Exposure()

    with pytest.raises(LtsError, match="refusing to serve on 0.0.0.0"):
        build_command(ServeOptions(address="0.0.0.0"), open_cfg, env={})
    argv, env = build_command(ServeOptions(address="0.0.0.0"), open_cfg, env={"LTS_ALLOW_UNAUTHENTICATED": "1"})
    assert env["LTS_ALLOW_UNAUTHENTICATED"] == "1" and "--server.address=0.0.0.0" in argv
    argv, env = build_command(ServeOptions(address="0.0.0.0", port=9000), signed, env={})
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    assert "--server.port=9000" in argv and "--server.maxUploadSize=50" in argv and "LTS_ALLOW_UNAUTHENTICATED" not in env


def test_lts_serve_reads_the_secrets_file(tmp_path, monkeypatch, capsys, hashes):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LTS_ALLOW_UNAUTHENTICATED", raising=False)
    (tmp_path / "dashboard").mkdir()
    (tmp_path / "dashboard" / "app.py").write_text("")
    assert main(["serve", "--address", "0.0.0.0", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lts: error: refusing to serve on 0.0.0.0 without sign-in")
    assert main(["serve", "--server.address=0.0.0.0", "--allow-unauthenticated", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("LTS_ALLOW_UNAUTHENTICATED=1 ")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[lts.users.otto]\nrole = "operator"\npassword_hash = "{hashes["otto"]}"\n[lts.limits]\nmax_upload_mb = 7\n')
    assert load_team_config().sign_in_configured
    assert main(["serve", "--address", "0.0.0.0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--server.address=0.0.0.0" in out and "--server.maxUploadSize=7" in out
    assert main(["team", "check"]) == 0 and "otto (operator)" in capsys.readouterr().out


def test_hash_password_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("correct horse\n"))
    assert main(["team", "hash-password", "--user", "alice", "--role", "operator", "--stdin"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('[lts.users.alice]\nrole = "operator"\npassword_hash = "scrypt$')
    assert "correct horse" not in out
    assert verify_password("correct horse", out.split('password_hash = "')[1].split('"')[0])
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("short\n"))
    assert main(["team", "hash-password", "--stdin"]) == 2


def test_audit_command(store, tmp_path, capsys):
    with pytest.raises(PermissionDenied):
        guarded.delete_run(VIEWER, store, "r1")
    assert main(["team", "audit", "--db", str(store.path)]) == 0
    line = capsys.readouterr().out.strip()
    assert "vera (viewer)  delete_run  r1  denied: viewer vera may not delete runs" in line


def test_the_shipped_secrets_example_is_what_the_parser_reads(hashes):
    """Uncommented (with real hashes in place of the placeholders), the example parses, and its limits
    are the defaults, so the file documents what the code does."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / ".streamlit" / "secrets.toml.example").read_text()
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("# ") and ("=" in ln or ln.startswith("# ["))
             and not ln.startswith("# Make")]
    body = "\n".join(lines).replace("scrypt$16384$8$1$REPLACE$REPLACE", hashes["otto"])
    import tomllib

    cfg = TeamConfig.from_secrets(tomllib.loads(body), env={})
    assert cfg.oidc_providers == (None,) and set(cfg.users) == {"bob", "carol"}
    assert cfg.roles == {"alice@example.org": "operator"} and cfg.limits == Limits()


def test_ray_devices_without_ray_are_one_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    assert main(["team", "devices", "--ray-address", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lts: error: --ray-address needs Ray, which is not installed here: pip install 'ray>=2.9'"]
