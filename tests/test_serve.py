"""``lts serve`` hardening: settings it pins whatever the folder, extras and variables that may not
override them, the sign-in limiter shared by all sessions, and uploads only for operators.

The last test starts a real ``lts serve`` from a folder whose ``.streamlit/config.toml`` asks for the
opposite of every pinned setting, and talks to it over HTTP and a websocket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from lts.cli import main
from lts.errors import LtsError
from lts.team.auth import SignInLimiter, hash_password
from lts.team.config import TeamConfig
from lts.team.limits import Limits
from lts.team.serve import ServeOptions, _env_var, build_command, pinned_options

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "dashboard"))  # the dashboard's own modules, as its pages import them
from upload_guard import UploadGuard  # noqa: E402
SIGNED = TeamConfig(users={"otto": {"role": "operator", "password_hash": "x"}})


# -- pinned settings: extras and STREAMLIT_* variables ---------------------------------------------
@pytest.mark.parametrize("extra, option", [
    (["--server.address=0.0.0.0"], "server.address"),
    (["--server.address", "0.0.0.0"], "server.address"),
    (["--theme.base=dark", "--server.port=1"], "server.port"),
    (["--server.maxuploadsize=999"], "server.maxUploadSize"),  # option names are matched in any case
    (["--server.enableXsrfProtection=false"], "server.enableXsrfProtection"),
    (["--server.enableCORS=false"], "server.enableCORS"),
    (["--browser.gatherUsageStats=true"], "browser.gatherUsageStats"),
    (["--client.showErrorDetails=full"], "client.showErrorDetails"),
    (["--server.trustedUserHeaders={\"X-Email\": \"email\"}"], "server.trustedUserHeaders"),
])
def test_extras_cannot_override_what_lts_serve_sets(extra, option):
    with pytest.raises(LtsError) as info:
        build_command(ServeOptions(extra=tuple(extra)), SIGNED, env={})
    assert f"lts serve sets {option}=" in str(info.value) and "\n" not in str(info.value)


def test_the_address_extra_is_refused_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["serve", "--dry-run", "--", "--server.address=0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("lts: error: --server.address: lts serve sets server.address=127.0.0.1 itself; "
                    "use lts serve --address")]


def test_other_extras_pass_after_the_pinned_flags():
    argv, _ = build_command(ServeOptions(extra=("--theme.base=dark", "--server.baseUrlPath", "lts")), SIGNED, env={})
    assert argv[-3:] == ["--theme.base=dark", "--server.baseUrlPath", "lts"]
    pinned = pinned_options(ServeOptions(), SIGNED)
    assert all(f"--{k}={v}" in argv for k, v in pinned.items())
    assert pinned["client.showErrorDetails"] == "none" and pinned["browser.gatherUsageStats"] == "false"


@pytest.mark.parametrize("var", ["STREAMLIT_SERVER_ADDRESS", "STREAMLIT_SERVER_MAX_UPLOAD_SIZE",
                                 "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION", "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS"])
def test_streamlit_variables_for_pinned_settings_are_refused(var):
    with pytest.raises(LtsError, match=f"^{var} is set: lts serve sets "):
        build_command(ServeOptions(), SIGNED, env={var: "x"})
    build_command(ServeOptions(), SIGNED, env={"STREAMLIT_THEME_BASE": "dark",  # not pinned: Streamlit's to use
                                               "STREAMLIT_SERVER_HEADLESS": "True"})  # what lts serve sets anyway


def test_variable_names_are_streamlits():
    from streamlit import config

    for key in pinned_options(ServeOptions(), SIGNED):
        assert _env_var(key) == config._config_options_template[key].env_var


def test_the_repository_config_says_what_lts_serve_passes():
    """`streamlit run dashboard/app.py` in the repository gets the same as `lts serve` with default limits."""
    toml = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    for key, value in pinned_options(ServeOptions(), TeamConfig(limits=Limits())).items():
        section, name = key.split(".")
        got = toml[section][name]
        assert (json.dumps(got) if isinstance(got, dict) else str(got).lower()) == value.lower(), key


# -- the sign-in limiter, without Streamlit -----------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_exactly_under_threads():
    limiter = SignInLimiter(per_name=5, per_client=20, base_delay_s=0.0)
    admitted: list[str] = []
    lock = threading.Lock()

    def hammer(i: int) -> None:
        for j in range(10):
            for name, client in (("vera", f"c{i}"), (f"n{i}-{j}", "one-client")):
                if limiter.admit(name, client).allowed:
                    with lock:
                        admitted.append(f"{name}@{client}")

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a.startswith("vera@") for a in admitted) == 5  # 80 tries of one name, from 8 clients
    assert sum(a.endswith("@one-client") for a in admitted) == 20  # 80 names from one client
    assert limiter.failures(name="vera") == 5 and limiter.failures(client="one-client") == 20


def test_limiter_backs_off_refuses_forgets_and_clears_on_success():
    clock = Clock()
    limiter = SignInLimiter(per_name=3, per_client=5, window_s=300, base_delay_s=1, max_delay_s=4, clock=clock)
    waits = []
    for _ in range(3):
        a = limiter.admit("vera", "ip1")
        waits.append(a.wait_s)
        clock.now += a.wait_s  # the page sleeps this long, then the check fails
    assert waits == [0, 1, 2]
    refused = limiter.admit("vera", "ip2")  # another client: the name's count holds
    assert not refused.allowed and refused.reason == "Too many failed sign-ins for vera: try again in 5 min."
    assert limiter.admit("otto", "ip1").allowed  # another name from the same client: 4 of 5
    clock.now += 4
    assert limiter.admit("otto", "ip1").allowed
    assert limiter.admit("eve", "ip1").reason == "Too many failed sign-ins from this address: try again in 5 min."
    clock.now += 301
    ok = limiter.admit("vera", "ip2")
    assert ok.allowed and ok.wait_s == 0  # the window has passed
    limiter.admit("vera", "ip2")
    limiter.record(ok, True)  # a success clears the name, and was no failure of the client
    assert limiter.failures(name="vera") == 0 and limiter.failures(client="ip2") == 1


# -- the upload guard -----------------------------------------------------------------------------
def test_upload_guard_keeps_files_only_for_allowed_sessions():
    from starlette.exceptions import HTTPException
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    mgr.add_file("early", UploadedFileRec("f0", "a.json", "application/json", b"x" * 10))  # before the first gate
    guard = UploadGuard()
    assert guard.install(mgr) and mgr.get_files("early", ["f0"]) == []
    with pytest.raises(HTTPException) as info:
        mgr.add_file("s1", UploadedFileRec("f1", "a.json", "application/json", b"x" * 10))
    assert info.value.status_code == 403 and mgr.get_stats() == {}
    guard.allow("s1", True)
    mgr.add_file("s1", UploadedFileRec("f1", "a.json", "application/json", b"x" * 10))
    assert len(mgr.get_files("s1", ["f1"])) == 1
    guard.allow("s1", False)  # signed out: what it uploaded goes
    assert mgr.get_files("s1", ["f1"]) == []
    second = UploadGuard()  # a cleared cache makes another guard: it takes over, no double wrapping
    assert second.install(mgr) and not second.allowed("s1")
    second.allow("s2", True)
    mgr.add_file("s2", UploadedFileRec("f2", "b.json", "application/json", b"y"))
    assert not UploadGuard().install(object())  # not an upload manager (AppTest's stand-in runtime)


# -- a real lts serve, started from another folder ----------------------------------------------
PROBE = """
import json, os, sys
import streamlit as st
sys.path.insert(0, {dashboard!r})
from team_page import gate
keys = {keys!r}
with open(os.environ["LTS_PROBE_OUT"], "w") as f:
    json.dump({{k: st.get_option(k) for k in keys}}, f)
gate()
"""

HOSTILE = """
[server]
address = "0.0.0.0"
port = 1
maxUploadSize = 999
enableXsrfProtection = false
enableCORS = false
enableStaticServing = true
trustedUserHeaders = { "X-Email" = "email", "X-Logged-In" = "is_logged_in" }
[browser]
gatherUsageStats = true
[client]
showErrorDetails = "full"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = "ltsboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.json\"\r\n"
            f"Content-Type: application/json\r\n\r\n").encode() + b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _with_session(port: int, cookie: str, then: Callable[[str], None]) -> None:
    """Open the app's websocket as a browser would, ask for a run, and call ``then(session_id)`` once
    the gate has run, while the websocket is still open (uploads need a connected session)."""
    import asyncio

    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async def talk() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                      additional_headers={"Cookie": cookie}, max_size=None) as ws:
            msg = BackMsg()
            msg.rerun_script.query_string = ""
            await ws.send(msg.SerializeToString())
            session = ""
            while True:
                fwd = ForwardMsg()
                fwd.ParseFromString(await asyncio.wait_for(ws.recv(), 30))
                if fwd.WhichOneof("type") == "new_session":
                    session = fwd.new_session.initialize.session_id
                if fwd.WhichOneof("type") == "script_finished":
                    break
            await asyncio.to_thread(then, session)

    asyncio.run(talk())


def _announce_upload(port: int, path: str, size: int, headers: dict[str, str]) -> int:
    """The status for a PUT announcing ``size`` bytes, answered before any of the body is sent."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.putrequest("PUT", path)
        for k, v in {**headers, "Content-Length": str(size)}.items():
            conn.putheader(k, v)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_real_serve_from_another_folder_pins_its_settings_and_bounds_uploads(tmp_path):
    keys = list(pinned_options(ServeOptions(), SIGNED))
    (tmp_path / "probe.py").write_text(PROBE.format(keys=keys, dashboard=str(REPO / "dashboard")))
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text(HOSTILE)
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[lts.users.otto]\nrole = "operator"\npassword_hash = "{hash_password("otto-secret-1")}"\n'
        '[lts.limits]\nmax_upload_mb = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "LTS_ALLOW"))}
    env.update(HOME=str(tmp_path), LTS_PROBE_OUT=str(tmp_path / "options.json"), LTS_DB=str(tmp_path / "t.db"))
    port = _free_port()
    lts = Path(sys.executable).with_name("lts")
    proc = subprocess.Popen([str(lts), "serve", "--port", str(port), "--app", str(tmp_path / "probe.py")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                status, headers, _ = _request(f"{base}/_stcore/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            time.sleep(0.25)
        else:
            pytest.fail("lts serve did not answer /_stcore/health")
        cookie = headers["set-cookie"].split(";")[0]  # XSRF on: health hands out the token cookie
        name, token = cookie.split("=", 1)
        assert name == "_streamlit_xsrf"

        body, ctype = _multipart(1000)
        url = f"{base}/_stcore/upload_file/no-such-session/f1"
        assert _request(url, "PUT", body, {"Content-Type": ctype})[0] == 403  # no XSRF token
        xsrf = {"Content-Type": ctype, "Cookie": cookie, "X-Xsrftoken": token}
        assert _request(url, "PUT", body, xsrf)[0] == 400  # a token, but no session

        seen: dict[str, object] = {}

        def uploads(session: str) -> None:
            path = f"/_stcore/upload_file/{session}/f1"
            seen["big"] = _announce_upload(port, path, int(1.5 * 2**20), xsrf)  # over maxUploadSize = max_upload_mb
            seen["small"] = _request(base + path, "PUT", body, xsrf)[::2]
            seen["metrics"] = _request(f"{base}/_stcore/metrics")[2].decode()

        _with_session(port, cookie, uploads)
        options = json.loads((tmp_path / "options.json").read_text())
        assert options == {
            "server.address": "127.0.0.1", "server.port": port, "server.headless": True,
            "server.maxUploadSize": 1, "server.enableXsrfProtection": True, "server.enableCORS": True,
            "server.enableStaticServing": False, "server.enableAgentApi": False, "server.trustedUserHeaders": {},
            "browser.gatherUsageStats": False, "client.showErrorDetails": "none", "global.developmentMode": False}
        assert seen["big"] == 413
        status, detail = seen["small"]
        assert status == 403 and b"sign in as an operator" in detail  # a session not signed in keeps nothing
        assert "UploadedFileManager" not in seen["metrics"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
