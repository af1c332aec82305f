"""What every page shares: the store (one connection per database file and process), cached point
frames, the linked selection and formatting."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from lts.decide.points import data_version, device_points, device_spaces, run_points
from lts.store.db import DEFAULT_DB, Store

LINKED = "linked_ids"  # session key: architectures selected on any deciding view, highlighted on all of them


def db_path() -> Path:
    return Path(os.environ.get("LTS_DB", str(DEFAULT_DB)))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store:
    """The shared store; a broken database file stops the page with one clear line.

    Every page calls it first, so it is also where a page that Streamlit ran without app.py (a deep
    link right after a restart) meets the sign-in gate."""
    from lts.errors import LtsError
    from team_page import gate_if_page_ran_alone

    gate_if_page_ran_alone()
    try:
        return _store(str(db_path()))
    except LtsError as exc:
        st.error(str(exc))
        st.stop()
        raise


def version(s: Store) -> tuple:
    """Cache key part that changes with every new measurement, evaluation or run update."""
    return data_version(s)


# Point frames are cached per (database, data version, selection): 150,000 rows take ~0.5 s to read,
# a cache hit ~10 ms. cache_resource hands out the same object: pages must not modify these frames.
@st.cache_resource(show_spinner=False, max_entries=8)
def _device_points(path: str, key: tuple, device_ids: tuple[str, ...]) -> pd.DataFrame:
    return device_points(_store(path), list(device_ids))


@st.cache_resource(show_spinner=False, max_entries=8)
def _run_points(path: str, key: tuple, run_ids: tuple[str, ...]) -> pd.DataFrame:
    return run_points(_store(path), list(run_ids))


def cached_device_points(s: Store, device_ids: list[str]) -> pd.DataFrame:
    return _device_points(str(s.path), version(s), tuple(device_ids))


def cached_run_points(s: Store, run_ids: list[str]) -> pd.DataFrame:
    return _run_points(str(s.path), version(s), tuple(run_ids))


EVERY_SPACE = "every space"


@st.cache_resource(show_spinner=False, max_entries=16)
def _device_spaces(path: str, key: tuple, device_id: str) -> dict[str, set[str]]:
    return device_spaces(_store(path), device_id)


def _spaces(s: Store, device_ids: list[str]) -> dict[str, set[str]]:
    spaces: dict[str, set[str]] = {}
    for device_id in device_ids:
        for name, ids in _device_spaces(str(s.path), version(s), device_id).items():
            spaces[name] = spaces.get(name, set()) | ids
    return dict(sorted(spaces.items()))


def space_members(s: Store, device_ids: list[str], space: str | None) -> set[str] | None:
    """The architectures that ``space``'s runs evaluated on the devices; None (every one) for no space."""
    return None if space is None else _spaces(s, device_ids).get(space, set())


def space_filter(s: Store, device_ids: list[str], key: str, container=st) -> tuple[str | None, set[str] | None]:
    """A "Space" picker for a device-level page: (the space, the architectures its runs evaluated on the
    devices), or (None, None) for every measurement (runs of every space and lone ``lts measure`` rows)."""
    choice = container.selectbox("Space", [EVERY_SPACE, *_spaces(s, device_ids)], key=key,
                                 help="only the architectures that this space's runs evaluated on the device "
                                      "(keeps, say, the demo's tiny models out of a GPT-2 comparison)")
    space = None if choice == EVERY_SPACE else choice
    return space, space_members(s, device_ids, space)


def rerun_when_jobs_move(key: str, signature: object) -> None:
    """From a page's live fragment: rerun the whole page when its jobs' ``signature`` changes (one
    finished, one more architecture trained), so what the page shows outside the fragment (results,
    pickers) follows without a reload. The first call only records it."""
    state = f"_jobs_moved_{key}"
    previous = st.session_state.get(state)
    st.session_state[state] = signature
    if previous is not None and previous != signature:
        st.rerun()


def linked() -> list[str]:
    return list(st.session_state.get(LINKED, []))


def set_linked(ids: list[str]) -> None:
    st.session_state[LINKED] = list(dict.fromkeys(ids))


def follow_selection(picked: list[str]) -> None:
    """Make a chart's new selection the linked one, and redraw so every view highlights it."""
    if picked and set(picked) != set(linked()):
        set_linked(picked)
        st.rerun()


def linked_controls(key: str) -> set[str]:
    """The linked selection as a caption with a clear button; returns it."""
    ids = linked()
    if ids:
        c1, c2 = st.columns([5, 1])
        c1.caption("Selected (highlighted on every device and page): " + ", ".join(f"`{a}`" for a in ids[:12])
                   + (f" and {len(ids) - 12} more" if len(ids) > 12 else ""))
        if c2.button("Clear selection", key=f"clear_{key}"):
            set_linked([])
            st.rerun()
    return set(ids)


def run_label(row: dict) -> str:
    device = row.get("device_name") or "proxy only"
    return f"{row['run_id']} · {row['family']} · {device} · {row['status']} · {row['n_evaluated']} archs"


def device_names(s: Store, empty_hint: str) -> dict[str, str]:
    """{device_id: name} of every device, or the page stops with ``empty_hint`` when there is none."""
    from lts.explore import devices_table

    devices = devices_table(s)
    if devices.empty:
        st.info(empty_hint)
        st.stop()
    return dict(zip(devices["device_id"], devices["name"]))


def launched(launch: Callable[[], str], what: str, pick_key: str, spinner: str | None = None) -> str | None:
    """Run a guarded launch (role, limits and audit are checked there): its one-line error on the
    page, or a toast and the new id remembered under ``pick_key``. Returns the id, None if refused."""
    from lts.errors import LtsError

    try:
        if spinner:
            with st.spinner(spinner):
                new_id = launch()
        else:
            new_id = launch()
    except LtsError as exc:
        st.error(str(exc))
        return None
    st.toast(f"Started {what} {new_id}")
    st.session_state[pick_key] = new_id
    return new_id


def cancel_then_rerun(cancel: Callable[[], object]) -> None:
    """A live panel's Cancel button: the guarded cancel, then a redraw of just the panel (or of the page
    when the panel ran inside a full rerun: the first load, AppTest)."""
    from lts.errors import LtsError

    try:
        cancel()
    except LtsError as exc:
        st.error(str(exc))
        return
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()
