"""Holding a job while working on it: lease renewal at every step of the per-job pipeline.

A claim (``StateStore.claim_job``) gives a worker ``lease_s`` seconds; a job whose read,
checks or writes take longer would otherwise be taken over by another worker while the
first is still writing. :class:`JobLease` renews the lease at each step (after the read,
after the checks, before each write) and makes each write conditional on the renewal:
renewing only succeeds while the lease row still names this worker, so once another
worker has taken the job (or taken, finished and released it) :meth:`JobLease.ensure`
raises :class:`LeaseLostError` and the job is stopped before the write.

A renewal gives a fresh ``lease_s`` right before the write, so the write itself must take
less than ``lease_s`` (CVAT requests are bounded by ``sync.cvat.timeout_s`` × retries,
far below the 10-minute default). CVAT and the store cannot share a transaction, so this
margin is what "conditional" means here; the pre-write re-read check (``writeback.py``)
still catches any edit that slips through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cvat_extension.cvat.state_store import StateStore
from cvat_extension.errors import CvatSyncError

__all__ = ["JobLease", "LeaseLostError"]

logger = logging.getLogger(__name__)


class LeaseLostError(CvatSyncError):
    """Another worker owns the job now: stop it without writing (not a failure)."""

    def __init__(self, message: str, *, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class JobLease:
    """Renews ``worker``'s leases in ``store`` for ``lease_s`` seconds at a time."""

    store: StateStore
    worker: str
    lease_s: float

    def renew(self, key: int) -> bool:
        """Extend every lease this worker holds (one statement); False if ``key`` (a job id,
        or a task's negative key) is no longer among them."""
        return self.store.renew_lease(key, self.worker, self.lease_s)

    def ensure(self, job_id: int, step: str) -> None:
        """Renew the job's lease before ``step``.

        Raises:
            LeaseLostError: another worker took the job over.
        """
        if not self.renew(job_id):
            held = self.store.lease_holder(job_id)
            who = held[0] if held else "nobody (it was finished and released)"
            logger.warning("job %d: lease lost before %s; now held by %s; stopping the job",
                           job_id, step, who)
            raise LeaseLostError(
                f"job {job_id}: lease lost before {step} (now held by {who}); stopped without writing",
                job_id=job_id,
            )
