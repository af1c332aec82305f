"""The Search page's live panel with searches running and queued (rows whose NULLs pandas 3 turns into NaN)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from conftest import small_space
from helpers import FAKE_DEVICE
from lts.search.runner import SearchSettings, create_run
from lts.store.db import Store
from test_dashboard import keep_main_module, loopback  # noqa: F401  (autouse fixtures: the same set-up)

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _running(store: Store, message: str | None, **settings) -> str:
    run_id = create_run(store, SearchSettings(space=small_space("gpt2"), **settings), FAKE_DEVICE, "fake-b1")
    with store.write() as conn:  # alive: this test process stands in for the search's process
        conn.execute("UPDATE runs SET status = 'running', pid = ?, message = ?, updated_at = ? WHERE run_id = ?",
                     (os.getpid(), message, time.time(), run_id))
    return run_id


def test_two_running_and_one_queued_show_their_panels_cancel_buttons_and_table(monkeypatch, tmp_path):
    db = tmp_path / "live.db"
    s = Store(db)
    a = _running(s, None, budget=10)
    b = _running(s, None, budget=None, time_budget=60.0)  # no budget: NULL in an integer column
    q = _running(s, "queued (position 1)", budget=5)
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["lts"] = {}
    at.run()
    at.switch_page("views/search.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [h.value for h in at.subheader][:2] == ["Running (3)", "All runs"]
    assert sorted(b_.key for b_ in at.button if b_.label == "Cancel") == sorted(f"cancel-{r}" for r in (a, b, q))
    assert any("queued (position 1)" in c.value for c in at.caption)
    texts = " ".join(m.value for m in at.markdown)
    assert all(r in texts for r in (a, b, q))
    table = at.dataframe[0].value
    assert set(table["run_id"]) == {a, b, q}
    [b_ for b_ in at.button if b_.key == f"cancel-{q}"][0].click().run()
    assert not at.exception
    assert s.run(q)["status"] == "cancelling"


def test_queue_position_reads_only_text():
    from lts.search.session import queue_position

    assert queue_position({"message": float("nan")}) is None
    assert queue_position({"message": None}) is None
    assert queue_position({"message": "queued (position 3)"}) == 3
