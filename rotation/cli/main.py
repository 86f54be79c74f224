"""``python -m rotation``: rotate and status, for people and for scripts.

Exit codes: 0 all well (or nothing due), 1 a target failed (or was busy), 2 usage or
configuration error, 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (the next ``rotate``
resumes; see :mod:`rotation.cli.interrupts`). Every failure is one line on stderr. ``--json`` output
is stable and documented in the README (a run-level failure is ``{"error": {...}}``); human
output is a table. Neither ever contains a secret value. ``validate`` reads only the
configuration: no network, no credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, TextIO

from rotation import __version__, logs
from rotation.cli.interrupts import Interrupts
from rotation.engine import format_time
from rotation.errors import ConfigError, RotationError, UnknownTargetError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rotation.app import StatusRow
    from rotation.backends import Lock
    from rotation.config import Config
    from rotation.engine import TargetReport

__all__ = ["emit_reports", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PLACEHOLDER_VAULT = "https://vault-from-app-setting.vault.azure.net"  # validate without one
_ADMIN_LOGIN = (
    "act as a workspace admin with your own Entra login (DefaultAzureCredential) instead of "
    "the targets' admin_token_secret_name"
)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="python -m rotation",
        description="Rotate Databricks PATs of Azure service principals.",
    )
    parser.add_argument("--config", help="TOML/JSON config file (default: $ROTATION_CONFIG)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rot = sub.add_parser("rotate", help="rotate what is due (or --force)")
    rot.add_argument("--target", action="append", default=[], help="only this target (repeat)")
    rot.add_argument("--force", action="store_true", help="rotate even if not due")
    rot.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
    rot.add_argument("--json", action="store_true", help="machine-readable output")
    st = sub.add_parser("status", help="show every target's PAT state (never a value)")
    st.add_argument("--target", action="append", default=[], help="only this target (repeat)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    val = sub.add_parser("validate", help="check the configuration only (offline): 0 or 2")
    val.add_argument("--json", action="store_true", help="machine-readable output")
    doc = sub.add_parser("doctor", help="check, read-only, that targets can rotate")
    doc.add_argument("--target", action="append", default=[], help="only this target (repeat)")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.add_argument("--admin-login", action="store_true", help=_ADMIN_LOGIN)
    grant = sub.add_parser("grant", help="give a target's service principal CAN_USE on tokens")
    grant.add_argument("--target", action="append", required=True, help="this target (repeat)")
    grant.add_argument("--admin-login", action="store_true", help=_ADMIN_LOGIN)
    commands = {"rotate": rot, "status": st, "validate": val, "doctor": doc, "grant": grant}
    return parser, commands


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI; return the exit code."""
    out = out or sys.stdout
    parser, commands = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # say it with the subcommand's usage, not the top-level one
            commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    logs.configure(args.log_level)
    if args.command == "validate":
        return _validate(args, out)
    from rotation.config import load_config  # noqa: PLC0415

    progress: dict[str, str] = {}
    with Interrupts() as interrupts:
        try:
            config = load_config(args.config)
            return asyncio.run(_run(args, config, out, progress, interrupts))
        except (ConfigError, UnknownTargetError) as exc:
            return _failed(args, out, exc, EXIT_USAGE)
        except RotationError as exc:
            return _failed(args, out, exc, EXIT_FAILED)
        except KeyboardInterrupt:
            return _interrupted(args, out, progress, interrupts)


def _failed(args: argparse.Namespace, out: TextIO, exc: RotationError, code: int) -> int:
    """Say a run-level failure: one line on stderr and, with ``--json``, an error object."""
    hint = "" if isinstance(exc, ConfigError | UnknownTargetError) else logs.hint()
    print(f"error: {exc}{hint}", file=sys.stderr)
    problems = list(exc.problems) if isinstance(exc, ConfigError) else [str(exc)]
    error = {"kind": exc.kind, "message": str(exc), "transient": exc.transient}
    _json_error(args, out, error | {"problems": problems})
    return code


def _json_error(args: argparse.Namespace, out: TextIO, error: dict[str, object]) -> None:
    if getattr(args, "json", False):
        json.dump({"error": error}, out, indent=2)
        out.write("\n")


def _interrupted(
    args: argparse.Namespace, out: TextIO, progress: dict[str, str], interrupts: Interrupts
) -> int:
    where = ", ".join(f"target {t} at step {s}" for t, s in sorted(progress.items()))
    by = " by SIGTERM" if interrupts.name == "SIGTERM" else ""
    message = (
        f"interrupted{by}{f': {where}' if where else ''}. Nothing is lost: run `rotate` again and "
        "it resumes where this run stopped."
    )
    print(message, file=sys.stderr)
    error = {"kind": "interrupted", "signal": interrupts.name, "message": message}
    _json_error(args, out, error | {"transient": True, "steps": dict(sorted(progress.items()))})
    return interrupts.exit_code


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    """Check the configuration only: no network, no credentials. One line per problem."""
    from rotation.config import load_config  # noqa: PLC0415

    try:
        config = load_config(args.config, default_vault_url=_PLACEHOLDER_VAULT)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        if args.json:
            error = {"kind": exc.kind, "problems": list(exc.problems)}
            json.dump({"ok": False, "error": error}, out, indent=2)
            out.write("\n")
        return EXIT_USAGE
    notes = config.warnings()
    if config.key_vault_url == _PLACEHOLDER_VAULT:
        notes.append(
            "key_vault_url is not set: the app takes it from ROTATION_KEY_VAULT_URL (the Bicep "
            "sets it); the CLI needs one of them"
        )
    names = [t.name for t in config.targets]
    if args.json:
        json.dump({"ok": True, "targets": names, "warnings": notes}, out, indent=2)
        out.write("\n")
    else:
        out.write(f"ok: {len(names)} target(s): {', '.join(names)}\n")
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return EXIT_OK


async def _run(
    args: argparse.Namespace,
    config: Config,
    out: TextIO,
    progress: dict[str, str],
    interrupts: Interrupts,
) -> int:
    from rotation.app import (  # noqa: PLC0415
        open_app,
        rotate,
        select,
        status,
    )

    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    # Only `rotate` writes: the other commands need no lock, so no storage account either.
    async with open_app(config, locking=args.command == "rotate", local_lock=True) as app:
        rt = dataclasses.replace(app.rt, progress=progress)  # read by main() on Ctrl-C
        if args.command == "status":
            names = {t.name for t in select(config, args.target)}
            rows = [row for row in await status(rt) if row.target in names]
            interrupts.work_done()
            _emit_status(rows, out, as_json=args.json)
            return EXIT_OK
        if args.command in {"doctor", "grant"}:
            from rotation.cli.admin import doctor, grant  # noqa: PLC0415

            command = doctor if args.command == "doctor" else grant
            code = await command(rt, args, out)
            interrupts.work_done()
            return code
        reports = await rotate(rt, args.target, force=args.force, dry_run=args.dry_run)
        interrupts.work_done()  # a Ctrl-C from here on changes nothing: the result stands
    if not args.json:
        print(f"note: {rt.lock.description}", file=sys.stderr)
    emit_reports(reports, out, as_json=args.json, lock=rt.lock)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


def emit_reports(
    reports: list[TargetReport], out: TextIO, *, as_json: bool, lock: Lock | None = None
) -> None:
    """Write *reports* to *out*: a table with per-target details, or JSON.

    JSON: ``{"targets": [...], "lock": {"description", "across_machines"}}`` (``lock`` when
    known), so a script learns too when no lock excluded other machines.
    """
    if as_json:
        data: dict[str, object] = {"targets": [r.to_json() for r in reports]}
        if lock is not None:
            data["lock"] = {"description": lock.description, "across_machines": lock.exclusive}
        json.dump(data, out, indent=2)
        out.write("\n")
        return
    rows = [
        [
            r.target,
            r.outcome.value,
            _short(r.token_id),
            format_time(r.expires_on) or "-",
            f"revoked {len(r.revoked)}, swept {len(r.swept)}" if r.revoked or r.swept else "",
            r.error.step if r.error else r.reason,
        ]
        for r in reports
    ]
    _table(["TARGET", "OUTCOME", "TOKEN", "EXPIRES", "CLEANUP", "DETAIL"], rows, out)
    for r in reports:
        for c in r.consumers:
            state = "confirmed" if c.confirmed else "pushed" if c.pushed else "not updated"
            out.write(f"  {r.target}: consumer {c.name}: {state}\n")
        out.writelines(f"  {r.target}: note: {note}\n" for note in r.notes)
        if r.credential_result not in {None, "off", "not-due"}:
            deleted = f", deleted {', '.join(r.credential_deleted)}" if r.credential_deleted else ""
            expires = format_time(r.credential_expires_on) or "-"
            out.write(
                f"  {r.target}: credential: {r.credential_result} (expires {expires}{deleted})\n"
            )
        if r.error:
            out.write(f"\n{r.target} failed at step {r.error.step}:\n  {r.error.message}\n")


def _emit_status(rows: list[StatusRow], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        json.dump({"targets": [s.to_json() for s in rows]}, out, indent=2)
        out.write("\n")
        return
    table = [
        [
            s.target,
            s.stage or "-",
            _short(s.token_id),
            format_time(s.expires_on) or "-",
            "-" if s.days_left is None else f"{s.days_left:.1f}",
            "yes" if s.due else "no",
            s.reason,
            s.last_result or "-",
        ]
        for s in rows
    ]
    header = ["TARGET", "STAGE", "TOKEN", "EXPIRES", "DAYS LEFT", "DUE", "REASON", "LAST RESULT"]
    _table(header, table, out)


def _short(token_id: str | None) -> str:
    return f"{token_id[:12]}…" if token_id and len(token_id) > 12 else (token_id or "-")  # noqa: PLR2004


def _table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        out.write("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
