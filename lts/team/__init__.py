"""Team use of one lts installation: sign-in and roles, limits, the audit trail, serving safely.

* :mod:`lts.team.auth`    -- ``User``, roles, ``require``, salted scrypt password hashes
* :mod:`lts.team.config`  -- ``TeamConfig`` from ``.streamlit/secrets.toml`` (OIDC, password users, roles, limits)
* :mod:`lts.team.limits`  -- ``Limits`` an operator cannot exceed from the browser
* :mod:`lts.team.audit`   -- the ``audit_log`` table: who did what, when
* :mod:`lts.team.guarded` -- the role- and limit-checked, audited calls pages make
* :mod:`lts.team.serve`   -- ``lts serve``: no exposure beyond loopback without sign-in

The Streamlit side (sign-in gate, warning banner, current user, limits, the Ray cluster's devices for
the Search page) is ``dashboard/team_page.py``: streamlit is imported only under ``dashboard/``.
"""
