"""Backups of a job's annotations, taken before every write, and ``restore``.

A backup is the job's annotation JSON exactly as CVAT returned it, plus who/when/which
state, written atomically (temporary file, fsync, rename) *before* the first write to the job
is sent. So at any moment a job we touched has a complete copy on disk of what the annotator
left, and ``cvat-track restore --job ID`` puts it back with one PUT.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvat_extension.cvat.content import content_hash, loose_hash, strip_ids
from cvat_extension.cvat.state_store import BackupRecord, StateStore
from cvat_extension.errors import CvatSyncError, InputError

__all__ = ["load_backup", "restore_job", "save_backup"]

logger = logging.getLogger(__name__)

FORMAT = "cvat-track-backup/1"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_backup(
    store: StateStore,
    backup_dir: str | Path,
    *,
    job_id: int,
    task_id: int,
    annotations: Mapping[str, Any],
    updated_date: str,
) -> BackupRecord:
    """Write ``annotations`` of ``job_id`` to a new backup file and record it in ``store``.

    The file name holds the time and the content hash, so repeated backups of an unchanged
    job are the same file (written once).
    """
    digest = content_hash(annotations)
    folder = Path(backup_dir) / f"job-{job_id}"
    existing = [b for b in store.backups(job_id) if b.content_hash == digest and Path(b.path).is_file()]
    if existing:
        return existing[-1]
    now = time.time()
    path = folder / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{digest[:12]}.json"
    doc = {
        "format": FORMAT,
        "job_id": job_id,
        "task_id": task_id,
        "taken_at": now,
        "updated_date": updated_date,
        "content_hash": digest,
        "annotations": dict(annotations),
    }
    _atomic_write(path, json.dumps(doc))
    record = BackupRecord(job_id=job_id, path=str(path), content_hash=digest, created_at=now)
    store.record_backup(record)
    logger.info("job %d: backup %s", job_id, path)
    return record


def load_backup(path: str | Path) -> dict[str, Any]:
    """Read a backup file.

    Raises:
        InputError: missing file, not JSON, or not a cvat-track backup.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{p}: cannot read backup: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: backup is not valid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "annotations" not in doc:
        raise InputError(f"{p}: not a cvat-track backup (expected format {FORMAT!r})")
    return doc


def restore_job(
    api: Any, store: StateStore, job_id: int, *, backup_file: str | Path | None = None
) -> dict[str, Any]:
    """Put a backup back into its job (PUT) and verify the job now holds exactly that.

    Without ``backup_file`` the oldest backup of the job is used: the state before the first
    write we ever made to it. The job's processed mark is dropped so the next sync checks it.

    Returns:
        The backup document that was restored.

    Raises:
        InputError: no backup for the job, or the file belongs to another job.
        CvatSyncError: the job does not match the backup after the PUT.
    """
    if backup_file is None:
        records = [b for b in store.backups(job_id) if Path(b.path).is_file()]
        if not records:
            raise InputError(f"job {job_id}: no backup recorded in the state store")
        backup_file = records[0].path
    doc = load_backup(backup_file)
    if int(doc["job_id"]) != job_id:
        raise InputError(f"{backup_file}: backup of job {doc['job_id']}, not of job {job_id}")
    annotations = doc["annotations"]
    api.put_job_annotations(job_id, strip_ids(annotations))
    after = api.get_job_annotations(job_id)
    if loose_hash(after) != loose_hash(annotations):
        raise CvatSyncError(
            f"job {job_id}: after restoring {backup_file} the job differs from the backup"
        )
    store.forget_job(job_id)
    logger.info("job %d: restored from %s", job_id, backup_file)
    return doc
