"""``cvat-track webhook``: receive CVAT webhooks and sync each job whose state/stage changed.

Create the webhook in CVAT (project or organization) with events ``update:job``, content
type ``application/json`` and a secret; export the same secret in the environment variable
named by ``sync.webhook.secret_env`` (``CVAT_WEBHOOK_SECRET``). Requests without a valid
``X-Signature-256`` get 401 and do nothing. Only ``POST`` on ``sync.webhook.path`` is
served; accepted jobs go to a durable queue (``sync.webhook.queue_path``) before the 202, a
redelivered webhook is synced once, and jobs queued before a crash sync on the next start.
SIGTERM or Ctrl-C stop it gracefully.

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

    from cvat_extension.cvat.webhook_queue import WebhookQueue

    cfg = load_sync_config(args.config)
    hook = cfg.webhook
    secret = hook.secret()
    queue = WebhookQueue(hook.queue_path, max_pending=hook.max_queue, dedupe_ttl_s=hook.dedupe_ttl_s)
    host = args.host or hook.host
    server = WebhookServer(secret, make_job_syncer(cfg), host=host,
                           port=args.port if args.port is not None else hook.port, path=hook.path, queue=queue)
    print(f"receiving CVAT webhooks at http://{host}:{args.port if args.port is not None else hook.port}"
          f"{hook.path} ({queue.pending()} queued job(s) from before); SIGTERM/Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    finally:
        queue.close()
    return 0
