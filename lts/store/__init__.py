"""Persistence: the SQLite store (:mod:`.db`) and results bundles (:mod:`.bundle`)."""

from lts.store.db import DEFAULT_DB, SCHEMA_VERSION, Store, open_store

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "Store", "open_store"]
