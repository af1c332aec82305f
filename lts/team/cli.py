"""``lts serve`` and ``lts team ...``: serving the dashboard to a team, passwords, the audit trail, Ray devices."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from lts.errors import LtsError


def cmd_serve(args: argparse.Namespace) -> None:
    from lts.team.config import load_team_config
    from lts.team.serve import ServeOptions, build_command, serve

    extra = tuple(a for a in args.streamlit_args if a != "--")
    options = ServeOptions(address=args.address, port=args.port, allow_unauthenticated=args.allow_unauthenticated,
                           app=Path(args.app) if args.app else None, extra=extra)
    config = load_team_config()
    if args.dry_run:
        argv, env = build_command(options, config)
        allowed = " LTS_ALLOW_UNAUTHENTICATED=1" if env.get("LTS_ALLOW_UNAUTHENTICATED") == "1" else ""
        print(f"{allowed.strip()} {' '.join(argv)}".strip())
        return
    serve(options, config)


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise LtsError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise LtsError("the two passwords differ")
    return first


def cmd_hash_password(args: argparse.Namespace) -> None:
    from lts.team.auth import ROLES, hash_password

    if args.role not in ROLES:
        raise LtsError(f"role must be one of {', '.join(ROLES)}, got {args.role!r}")
    hashed = hash_password(_read_password(args.stdin))
    if args.user:
        print(f"[lts.users.{args.user}]\nrole = \"{args.role}\"\npassword_hash = \"{hashed}\"")
    else:
        print(f"password_hash = \"{hashed}\"")


def cmd_check(args: argparse.Namespace) -> None:
    from lts.team.config import load_team_config

    cfg = load_team_config()
    oidc = ", ".join(p or "default" for p in cfg.oidc_providers) or "none"
    print(f"OIDC providers: {oidc}")
    users = ", ".join(f"{name} ({entry['role']})" for name, entry in cfg.users.items())
    print(f"password users: {users or 'none'}")
    print(f"sign-in configured: {'yes' if cfg.sign_in_configured else 'no (lts serve binds 127.0.0.1 only)'}")
    print("limits: " + ", ".join(f"{k}={v:g}" for k, v in vars(cfg.limits).items()))


def cmd_audit(args: argparse.Namespace) -> None:
    import time

    from lts.store.db import open_store
    from lts.team.audit import entries

    rows = entries(open_store(args.db), args.limit, args.user, args.action)
    for r in rows:
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
            reason = (r["detail"] or {}).get("reason")
            print(f"{when}  {r['user']} ({r['role']})  {r['action']}  {r['target'] or '-'}  {r['outcome']}"
                  + (f": {reason}" if reason else ""))
    if not rows and not args.json:
        print("no audit entries")


def cmd_devices(args: argparse.Namespace) -> None:
    from lts.cost.remote import list_ray_devices

    devices = list_ray_devices(args.ray_address)
    for d in devices:
        print(json.dumps(d.to_dict()) if args.json else f"{d.name}  {d.nodes} node(s)  {', '.join(d.hosts)}")
    if not devices and not args.json:
        print("no lts devices in the cluster: on a device run ray start --address HEAD:6379 "
              "--resources '{\"lts-device:NAME\": 1}'")


def add_commands(sub: Any) -> None:
    s = sub.add_parser("serve", help="start the dashboard (refuses to listen beyond 127.0.0.1 without sign-in)")
    s.add_argument("--address", "--server.address", dest="address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 needs sign-in or --allow-unauthenticated)")
    s.add_argument("--port", "--server.port", dest="port", type=int, default=8501)
    s.add_argument("--allow-unauthenticated", action="store_true",
                   help="listen beyond 127.0.0.1 without sign-in (every page warns); or LTS_ALLOW_UNAUTHENTICATED=1")
    s.add_argument("--app", help="the Streamlit app (default dashboard/app.py)")
    s.add_argument("--dry-run", action="store_true", help="print the server command instead of running it")
    s.add_argument("streamlit_args", nargs="*", help="further Streamlit options, after -- (not the address, port, upload or security ones lts serve sets)")
    s.set_defaults(func=cmd_serve)

    team = sub.add_parser("team", help="team use: passwords, sign-in check, audit trail, Ray devices")
    tsub = team.add_subparsers(dest="team_cmd", required=True)
    h = tsub.add_parser("hash-password", help="print a salted password hash for .streamlit/secrets.toml")
    h.add_argument("--user", help="print a whole [lts.users.USER] section")
    h.add_argument("--role", default="viewer", help="viewer or operator (with --user)")
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)

    c = tsub.add_parser("check", help="check the team settings in .streamlit/secrets.toml")
    c.set_defaults(func=cmd_check)

    a = tsub.add_parser("audit", help="who launched, cancelled, imported or deleted what, and when")
    a.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--user")
    a.add_argument("--action")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_audit)

    d = tsub.add_parser("devices", help="the lts devices of a Ray cluster")
    d.add_argument("--ray-address", required=True, help="auto, HOST:PORT or ray://HOST:10001")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_devices)
