"""``cvat-track restore --job ID``: put a job's annotations back from a sync backup.

Without ``--backup`` the job's oldest backup is read from the state store (``sync.state.path``):
the state before the first write the sync ever made to it. Backups live in the store, so this
works from any host that shares it, whichever worker took the backup; ``--backup FILE`` uses a
local backup file instead. The job's current annotations are backed up first (a restore can
be undone the same way). Objects are put back under their own ids (PATCH), so issues naming
them stay valid; where CVAT does not keep the ids the job is replaced (PUT, new ids) and every
open issue of ours naming a track id that no longer exists is re-opened under the new ids (the
old one is resolved with a comment pointing to it). Then the job is compared with the backup.

Exit codes: 0 restored and verified, 2 no backup, bad file, or CVAT refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import positive_int


def register(subparsers: Any) -> None:
    """Add the ``restore`` subcommand."""
    p = subparsers.add_parser(
        "restore", help="put a job's annotations back from a sync backup",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--job", type=positive_int, required=True, metavar="ID", help="CVAT job id")
    p.add_argument("--backup", metavar="FILE", help="backup file (default: the job's oldest backup in the state store)")
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section (default serverless.yaml)")
    p.add_argument("--list", action="store_true", help="list the job's backups and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Restore (or list) backups; returns the exit code."""
    import time

    from cvat_extension.cvat.backup import restore_job
    from cvat_extension.cvat.config import load_sync_config
    from cvat_extension.cvat.state_store import open_state_store

    cfg = load_sync_config(args.config)
    store = open_state_store(cfg.state.path)
    try:
        if args.list:
            for b in store.backups(args.job):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b.created_at))
                where = "in store" if b.size else "file only"
                copy = f"  copy {b.path}" if b.path else ""
                print(f"{when}Z  {b.content_hash[:12]}  {where} ({b.size} bytes){copy}")
            return 0
        if args.backup is None and not store.backups(args.job):
            from cvat_extension.errors import InputError

            raise InputError(f"job {args.job}: no backup recorded in {cfg.state.path}")
        from cvat_extension.cvat.connection import connect

        api = connect(cfg.cvat, cfg.retry)
        try:
            doc = restore_job(api, store, args.job, backup_file=args.backup)
        finally:
            api.client.close()
        n = len(doc["annotations"].get("tracks") or [])
        ids = "track ids kept" if doc["ids_kept"] else (
            f"track ids changed; {len(doc['issues_rewritten'])} open issue(s) re-opened under the new ids")
        print(f"job {args.job}: restored {n} track(s) from the backup taken at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(doc['taken_at']))}Z; {ids}; verified")
        return 0
    finally:
        store.close()
