"""Persistence, and every SQL statement of lts: the SQLite store (:mod:`.db`: connections, DDL,
numbered migrations), one repository module per subject (:mod:`.runs`, :mod:`.jobs`,
:mod:`.measurements`, :mod:`.validations`, :mod:`.surrogates`, :mod:`.darts`, :mod:`.audit`,
:mod:`.reads`) and the results-bundle format (:mod:`.bundle`). Nothing outside this package writes SQL."""

from lts.store.db import DEFAULT_DB, SCHEMA_VERSION, Store, open_store

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "Store", "open_store"]
