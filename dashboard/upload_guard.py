"""Uploads kept only for browser sessions whose user may import bundles (the Streamlit side of ``lts serve``'s
upload bound: ``server.maxUploadSize`` is pinned by :mod:`lts.team.serve`, this refuses the rest)."""

from __future__ import annotations

import threading
from typing import Any, Callable


class UploadGuard:
    """Keeps uploaded files only for browser sessions whose user may import bundles.

    Streamlit accepts ``PUT /_stcore/upload_file/<session>/<file_id>`` for any live session and any
    file id (``create_upload_routes`` in ``streamlit/web/server/starlette/starlette_routes.py``: it
    checks the XSRF token, that the session is active and ``server.maxUploadSize`` per file, never a
    widget, a sign-in or a total), and keeps each file in memory until the session ends. A session
    that has not signed in can get a session id and a token just by opening the page, so without
    this every visitor could park ``maxUploadSize`` bytes per file id on the server. :meth:`install`
    wraps the server's upload manager (``Runtime.instance().uploaded_file_mgr``) so that ``add_file``
    refuses (HTTP 403) for a session the gate has not marked with :meth:`allow`. The body of a refused
    request has been read by then (at most ``maxUploadSize``), but nothing is kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allowed: set[str] = set()
        self._manager: Any = None

    def allowed(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._allowed

    def allow(self, session_id: str, may_upload: bool) -> None:
        """Mark whether ``session_id`` may upload; taking it away drops what it uploaded."""
        with self._lock:
            had = session_id in self._allowed
            if may_upload:
                self._allowed.add(session_id)
            else:
                self._allowed.discard(session_id)
            manager = self._manager
        if had and not may_upload and manager is not None:
            manager.remove_session_files(session_id)

    def forget_ended(self, is_active: Callable[[str], bool]) -> None:
        """Drop sessions that have ended (their ids are never reused)."""
        with self._lock:
            self._allowed = {s for s in self._allowed if is_active(s)}

    def install(self, manager: Any) -> bool:
        """Guard ``manager.add_file`` (once per manager; a later guard takes over). Whether it is guarded."""
        from streamlit.runtime.uploaded_file_manager import UploadedFileManager

        if not isinstance(manager, UploadedFileManager):
            return False  # e.g. AppTest's stand-in runtime: no HTTP uploads there
        with self._lock:
            self._manager = manager
        state = manager.__dict__
        if "_lts_upload_guard" not in state:
            original = manager.add_file

            def add_file(session_id: str, file: Any) -> None:
                if not state["_lts_upload_guard"].allowed(session_id):
                    from starlette.exceptions import HTTPException

                    raise HTTPException(status_code=403, detail="sign in as an operator to upload")
                original(session_id, file)

            manager.add_file = add_file
            # Files that arrived before the first gate ran (a fresh server's first session) are dropped.
            for session_id in list(getattr(manager, "file_storage", {})):
                if not self.allowed(session_id):
                    manager.remove_session_files(session_id)
        state["_lts_upload_guard"] = self
        return True
