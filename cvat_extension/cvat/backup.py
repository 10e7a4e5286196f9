"""Backups of a job's annotations, taken before every write, and ``restore``.

A backup is the job's annotation JSON exactly as CVAT returned it, plus who/when/which
state. It is stored *in the state store* (zlib-compressed JSON, keyed by job and content
hash) before the first write to the job is sent, so any worker sharing the store, on any
host, can resume a dead worker's journal or put the job back; ``sync.state.backup_dir``
adds an optional local copy (written atomically: temporary file, fsync, rename) for people
who want plain files. So at any moment a job we touched has a complete copy of what the
annotator left, and ``cvat-track restore --job ID`` puts it back with one PUT.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvat_extension.cvat.content import canonical, content_hash, loose_hash, strip_ids
from cvat_extension.cvat.state_store import BackupRecord, IssueRecord, StateStore
from cvat_extension.errors import CvatSyncError, InputError

__all__ = ["decode_backup", "encode_backup", "load_backup", "load_job_backup", "project", "put_back",
           "restore_job", "save_backup"]

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


def encode_backup(doc: Mapping[str, Any]) -> bytes:
    """A backup document as stored: compact JSON, zlib level 6 (annotation JSON shrinks ~10x)."""
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)


def _check_doc(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "annotations" not in doc:
        raise InputError(f"{where}: not a cvat-track backup (expected format {FORMAT!r})")
    want = doc.get("content_hash")
    if want is not None and content_hash(doc["annotations"]) != want:
        raise InputError(f"{where}: backup is corrupt (its annotations do not match its hash)")
    return doc


def decode_backup(data: bytes, where: str = "backup") -> dict[str, Any]:
    """Inverse of :func:`encode_backup`, checking the format and the content hash.

    Raises:
        InputError: not zlib, not JSON, not a backup, or corrupt (names ``where``).
    """
    try:
        doc = json.loads(zlib.decompress(data).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: cannot decode backup: {exc}") from exc
    return _check_doc(doc, where)


def save_backup(
    store: StateStore,
    backup_dir: str | Path | None,
    *,
    job_id: int,
    task_id: int,
    annotations: Mapping[str, Any],
    updated_date: str,
) -> BackupRecord:
    """Keep ``annotations`` of ``job_id`` in the store (and a file under ``backup_dir``).

    Idempotent per content: a backup of annotations the store already holds is not taken
    again (the store keeps the first, the state before our first write).
    """
    digest = content_hash(annotations)
    for b in store.backups(job_id):
        if b.content_hash == digest and b.size > 0 and (backup_dir is None or Path(b.path).is_file()):
            return b
    now = time.time()
    doc = {
        "format": FORMAT,
        "job_id": job_id,
        "task_id": task_id,
        "taken_at": now,
        "updated_date": updated_date,
        "content_hash": digest,
        "annotations": dict(annotations),
    }
    path = ""
    if backup_dir is not None:
        p = Path(backup_dir) / f"job-{job_id}" / (
            f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{digest[:12]}.json")
        _atomic_write(p, json.dumps(doc))
        path = str(p)
    data = encode_backup(doc)
    store.record_backup(BackupRecord(job_id, path, digest, now, len(data)), data)
    # Re-read: on a repeated backup the store keeps the first row (its time and path).
    record = next(b for b in store.backups(job_id) if b.content_hash == digest)
    logger.info("job %d: backup %s in the state store (%d bytes)%s", job_id, digest[:12], len(data),
                f", copy {path}" if path else "")
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
    return _check_doc(doc, str(p))


def load_job_backup(store: StateStore, job_id: int, content_hash: str | None = None) -> dict[str, Any]:
    """A job's backup document from the store: the one with ``content_hash``, else the oldest.

    The copy in the store is used first (it is there for every worker); the local file only
    for backups recorded before the store kept them.

    Raises:
        InputError: no such backup, or it cannot be read.
    """
    records = store.backups(job_id)
    if content_hash is not None:
        records = [b for b in records if b.content_hash == content_hash]
    if not records:
        what = f" with content {content_hash[:12]}" if content_hash else ""
        raise InputError(f"job {job_id}: no backup{what} recorded in the state store")
    rec = records[0]
    data = store.backup_data(job_id, rec.content_hash) if rec.size else None
    if data is not None:
        doc = decode_backup(data, f"job {job_id} backup {rec.content_hash[:12]} (state store)")
    elif rec.path and Path(rec.path).is_file():
        doc = load_backup(rec.path)
    else:
        raise InputError(
            f"job {job_id}: backup {rec.content_hash[:12]} is neither in the state store nor at "
            f"{rec.path or '(no local copy)'}"
        )
    if int(doc["job_id"]) != job_id:
        raise InputError(f"job {job_id}: stored backup belongs to job {doc['job_id']}")
    return doc


_KINDS = ("tags", "shapes", "tracks")


def project(doc: Mapping[str, Any], ids: Mapping[str, set[Any]]) -> dict[str, Any]:
    """Only the objects of ``doc`` whose ids are in ``ids`` (per kind)."""
    return {k: [o for o in doc.get(k) or [] if o.get("id") in ids[k]] for k in _KINDS}


def _restore_ops(current: Mapping[str, Any], base: Mapping[str, Any],
                 ids: Mapping[str, set[Any]] | None = None) -> list[dict[str, Any]]:
    """PATCH operations that put ``base``'s objects back into ``current`` keeping their ids.

    ``update`` with an id re-creates the object under that id (also one that was deleted);
    objects ``base`` lacks are deleted. ``ids``: only these objects (None: all).
    """
    updates: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
    deletes: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
    for kind in _KINDS:
        have = {o.get("id"): o for o in current.get(kind) or []
                if ids is None or o.get("id") in ids[kind]}
        want = {o.get("id"): o for o in base.get(kind) or []
                if ids is None or o.get("id") in ids[kind]}
        for oid, obj in want.items():
            old = have.get(oid)
            if old is None or canonical({kind: [old]}) != canonical({kind: [obj]}):
                clean = dict(obj)
                if kind == "tracks":
                    clean["shapes"] = [{k: v for k, v in s.items() if k != "id"} for s in obj["shapes"]]
                updates[kind].append(clean)
        deletes[kind] = [dict(o) for oid, o in have.items() if oid not in want]
    ops = []
    if any(updates.values()):
        ops.append({"action": "update", "payload": updates})
    if any(deletes.values()):
        ops.append({"action": "delete", "payload": deletes})
    return ops


def put_back(api: Any, job_id: int, base: Mapping[str, Any], *,
             ids: Mapping[str, set[Any]] | None = None) -> bool:
    """Put ``base``'s objects (all, or only ``ids``) back into the job; True when CVAT kept
    their ids (else the job was replaced by a PUT of ``base``, only possible with all).

    Raises:
        CvatSyncError: the job still differs from ``base`` afterwards.
    """
    def same(doc: Mapping[str, Any]) -> bool:
        if ids is None:
            return content_hash(doc) == content_hash(base)
        return canonical(project(doc, ids)) == canonical(project(base, ids))

    current = api.get_job_annotations(job_id)
    if same(current):
        return True
    for op in _restore_ops(current, base, ids):
        api.patch_job_annotations(job_id, op["action"], op["payload"])
    if same(api.get_job_annotations(job_id)):
        return True
    if ids is not None:
        raise CvatSyncError(f"job {job_id}: CVAT did not keep the object ids when putting them back")
    logger.warning("job %d: CVAT did not keep the ids on restore; replacing the job (PUT)", job_id)
    api.put_job_annotations(job_id, strip_ids(base))
    if loose_hash(api.get_job_annotations(job_id)) != loose_hash(base):
        raise CvatSyncError(f"job {job_id}: differs from its backup after restoring it")
    return False


def restore_job(
    api: Any, store: StateStore, job_id: int, *, backup_file: str | Path | None = None
) -> dict[str, Any]:
    """Put a backup back into its job, keeping object ids, and verify the job holds exactly that.

    Without ``backup_file`` the oldest backup of the job in the store is used: the state
    before the first write we ever made to it. The job's current annotations are backed up
    first (a restore is a write too, and can be undone the same way). Objects are put back
    with ``PATCH`` under their own ids (``put_back``), so issues naming them stay valid;
    when CVAT does not keep the ids, the job is replaced by a ``PUT`` and every open issue
    of ours that names a track id that no longer exists is re-opened under the new ids
    (the old one is resolved with a comment naming the new one). The job's processed mark
    is dropped so the next sync checks it.

    Returns:
        The backup document that was restored, plus ``"ids_kept"`` (bool) and
        ``"issues_rewritten"`` (old issue id → new issue id).

    Raises:
        InputError: no backup for the job, or the file belongs to another job.
        CvatSyncError: the job does not match the backup afterwards.
    """
    if backup_file is None:
        doc = load_job_backup(store, job_id)
        source = f"the stored backup {doc['content_hash'][:12]}"
    else:
        doc = load_backup(backup_file)
        source = str(backup_file)
        if int(doc["job_id"]) != job_id:
            raise InputError(f"{backup_file}: backup of job {doc['job_id']}, not of job {job_id}")
    annotations = doc["annotations"]
    current = api.get_job_annotations(job_id)
    job = api.get_job(job_id)
    save_backup(store, None, job_id=job_id, task_id=int(doc.get("task_id") or job.get("task_id") or 0),
                annotations=current, updated_date=str(job.get("updated_date")))
    kept = put_back(api, job_id, annotations)
    rewritten: dict[int, int] = {}
    if not kept:
        rewritten = _rewrite_issues(api, store, job_id, annotations, api.get_job_annotations(job_id))
    after = api.get_job_annotations(job_id)
    if loose_hash(after) != loose_hash(annotations):
        raise CvatSyncError(f"job {job_id}: after restoring {source} the job differs from the backup")
    store.forget_job(job_id)
    logger.info("job %d: restored from %s (ids %s)", job_id, source, "kept" if kept else "changed")
    return {**doc, "ids_kept": kept, "issues_rewritten": rewritten}


def _track_key(t: Mapping[str, Any]) -> str:
    return json.dumps(canonical({"tracks": [{**t, "id": None}]}), sort_keys=True)


def _rewrite_issues(api: Any, store: StateStore, job_id: int, backup: Mapping[str, Any],
                    restored: Mapping[str, Any]) -> dict[int, int]:
    """Re-open our open issues of the job that name track ids a PUT replaced."""
    from cvat_extension.cvat.review_push import rename_track_ids, track_refs

    new_ids: dict[str, list[int]] = {}
    for t in restored.get("tracks") or []:
        new_ids.setdefault(_track_key(t), []).append(int(t["id"]))
    renamed: dict[int, int] = {}
    for t in backup.get("tracks") or []:
        ids = new_ids.get(_track_key(t))
        if ids:
            renamed[int(t["id"])] = ids.pop(0)
    alive = {int(t["id"]) for t in restored.get("tracks") or []}
    ours = {r.issue_id: r for r in store.issues(job_id).values()}
    if not ours:
        return {}
    issues = {int(i["id"]): i for i in api.list_job_issues(job_id)}
    first: dict[int, Mapping[str, Any]] = {}
    for c in sorted(api.list_job_comments(job_id), key=lambda c: int(c["id"])):
        first.setdefault(int(c["issue"]), c)
    out: dict[int, int] = {}
    for issue_id, rec in ours.items():
        issue = issues.get(issue_id)
        if issue is None or issue.get("resolved") or issue_id not in first:
            continue
        text = str(first[issue_id].get("message", ""))
        if track_refs(text) <= alive:
            continue
        new = api.create_issue(job_id=job_id, frame=int(issue["frame"]),
                               position=[float(v) for v in issue["position"]],
                               message=rename_track_ids(text, renamed))
        new_id = int(new["id"])
        api.create_comment(issue_id, f"Track ids changed when the job was restored from a backup; "
                                     f"continued in issue #{new_id}.")
        api.update_issue(issue_id, resolved=True)
        store.record_issue(IssueRecord(job_id, rec.fingerprint, new_id, rec.frame, rec.region_hash,
                                       time.time(), kinds=rec.kinds,
                                       track_ids=rec.track_ids, frames=rec.frames))
        out[issue_id] = new_id
    return out
