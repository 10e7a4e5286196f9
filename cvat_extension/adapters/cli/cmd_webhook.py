"""``cvat-track webhook``: receive CVAT webhooks and sync each job whose state/stage changed.

Create the webhook in CVAT (project or organization) with events ``update:job``, content
type ``application/json`` and a secret; export the same secret in the environment variable
named by ``sync.webhook.secret_env`` (``CVAT_WEBHOOK_SECRET``). Requests without a valid
``X-Signature-256`` get 401 and do nothing.

Exit codes: 0 stopped, 2 bad configuration (e.g. no secret).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``webhook`` subcommand."""
    p = subparsers.add_parser(
        "webhook", help="HTTP receiver for CVAT webhooks (signed); syncs changed jobs",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section (default serverless.yaml)")
    p.add_argument("--host", metavar="HOST", help="address to bind (default sync.webhook.host)")
    p.add_argument("--port", type=int, metavar="PORT", help="port to bind (default sync.webhook.port)")
    p.set_defaults(func=run)


def make_job_syncer(cfg: Any) -> Any:
    """A ``sync_job(job_id)`` callable: one sync pass restricted to that job."""
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.state_store import open_state_store
    from cvat_extension.cvat.sync import run_sync

    def sync_job(job_id: int) -> Any:
        api = connect(cfg.cvat, cfg.retry)
        store = open_state_store(cfg.state.path)
        try:
            summary = run_sync(api, store, cfg, job_id=job_id)
            logger.warning("webhook: job %d synced: %d issue(s) opened, %d merge(s) applied",
                           job_id, summary.issues_opened, summary.merges_applied)
            return summary
        finally:
            store.close()
            api.client.close()

    return sync_job


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    from cvat_extension.cvat.config import load_sync_config
    from cvat_extension.cvat.webhook import WebhookServer

    cfg = load_sync_config(args.config)
    secret = cfg.webhook.secret()
    server = WebhookServer(secret, make_job_syncer(cfg), host=args.host or cfg.webhook.host,
                           port=args.port if args.port is not None else cfg.webhook.port)
    print(f"listening on http://{args.host or cfg.webhook.host}:{server.port}/ for CVAT webhooks")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
