"""What every page shares: the store (one connection per database file and process) and formatting."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from lts.store.db import DEFAULT_DB, Store


def db_path() -> Path:
    return Path(os.environ.get("LTS_DB", str(DEFAULT_DB)))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store:
    """The shared store; a broken database file stops the page with one clear line."""
    from lts.errors import LtsError

    try:
        return _store(str(db_path()))
    except LtsError as exc:
        st.error(str(exc))
        st.stop()
        raise


def run_label(row: dict) -> str:
    device = row.get("device_name") or "proxy only"
    return f"{row['run_id']} · {row['family']} · {device} · {row['status']} · {row['n_evaluated']} archs"


def fmt_params(n: float) -> str:
    return f"{n / 1e6:.2f} M"
