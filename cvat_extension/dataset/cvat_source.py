"""Dataset sequences read from CVAT: tasks, annotation jobs and consensus replica jobs.

Reads go through the sync loop's readers (:func:`cvat_extension.cvat.annotations.read_task`:
one task-level annotation read, keyframes expanded as CVAT does, job pieces stitched), so
a dataset command sees a task exactly as ``sync`` checks it.

- a **task** is one sequence (its name is the task name);
- an **annotation job** is its task's stitched tracks restricted to the job's frames, with
  the task's ids, so review items found on it can be pushed like ``sync``'s;
- a **consensus replica job** (``type=replica``, ``parent_job_id``) is not part of the
  task-level read: its own job-level annotations are expanded over its frames.

The connection and credentials come from the ``sync:`` section of ``serverless.yaml``
(``--config``), as for every CVAT command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cvat_extension.core.tracks import SequenceInfo
from cvat_extension.dataset.sequences import Sequence
from cvat_extension.errors import InputError

__all__ = ["connect_from_config", "job_sequence", "replica_job_ids", "task_sequence"]

logger = logging.getLogger(__name__)


def connect_from_config(config: str | Path) -> tuple[Any, Any]:
    """``(api, sync config)`` from the ``sync:`` section of ``config``.

    Raises:
        ConfigError: a bad or missing config.
        CvatSyncError: CVAT refused the login.
    """
    from cvat_extension.cvat.config import load_sync_config
    from cvat_extension.cvat.connection import connect

    cfg = load_sync_config(config)
    return connect(cfg.cvat, cfg.retry), cfg


def task_sequence(api: Any, task_id: int) -> Sequence:
    """Task ``task_id`` as one sequence (``extra["snapshot"]`` keeps the task read)."""
    from cvat_extension.cvat.annotations import read_task

    snap = read_task(api, int(task_id))
    from cvat_extension.dataset.sequences import groups_of, mask_tracks_of

    masks = mask_tracks_of(snap.doc)
    extra: dict[str, object] = {"snapshot": snap}
    if masks:
        extra["mask_tracks"] = masks
        extra["groups"] = groups_of(snap.doc, snap.piece_to_stitched)
    return Sequence(name=snap.name or f"task-{task_id}", tracks=snap.dense, info=snap.info,
                    source=f"cvat task {task_id}", extra=extra)


def job_sequence(api: Any, job_id: int) -> Sequence:
    """Job ``job_id`` as one sequence over its own frames (task frame numbers kept).

    Raises:
        InputError: the job is not an annotation or replica job.
    """
    from cvat_extension.cvat.jobs import JobInfo

    job = JobInfo.from_json(api.get_job(int(job_id)))
    if job.type == "annotation":
        task = task_sequence(api, job.task_id)
        dense = task.tracks
        rows = dense[(dense.frame >= job.start_frame) & (dense.frame <= job.stop_frame)]
        return Sequence(name=f"{task.name} job {job.id}", tracks=rows, info=task.info,
                        source=f"cvat job {job.id}", extra={**task.extra, "job": job})
    if job.type != "replica":
        raise InputError(f"cvat job {job_id}: a {job.type!r} job holds no annotations to compare")
    return _replica_sequence(api, job)


def _replica_sequence(api: Any, job: Any) -> Sequence:
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.io.cvat_json import parse_labeled_data

    labels = [{"id": int(lb["id"]), "name": str(lb["name"])} for lb in api.list_labels(job.task_id)]
    meta = api.get_task_meta(job.task_id)
    frames_meta = meta.get("frames") or [{}]
    raw = api.get_job_annotations(job.id)
    doc = parse_labeled_data(raw, labels=labels, path=f"job {job.id} annotations")
    dense = expand_keyframes(doc.tracks, stop_frame=job.stop_frame, job_stops=[job.stop_frame])
    dense = dense[dense.frame >= job.start_frame]
    info = SequenceInfo(num_frames=int(meta.get("size") or job.stop_frame + 1),
                        width=int(frames_meta[0].get("width", 0) or 0),
                        height=int(frames_meta[0].get("height", 0) or 0), frame_base=0,
                        name=f"job {job.id}")
    return Sequence(name=f"replica job {job.id}", tracks=dense, info=info,
                    source=f"cvat replica job {job.id}", extra={"job": job})


def replica_job_ids(api: Any, job_id: int) -> list[int]:
    """Ids of the consensus replica jobs of annotation job ``job_id``, ascending.

    Raises:
        InputError: fewer than two replicas (nothing to compare).
    """
    jobs = api.list_jobs(parent_job_id=int(job_id), type="replica", page_size=100)
    ids = sorted(int(j["id"]) for j in jobs
                 if j.get("type") == "replica" and int(j.get("parent_job_id") or 0) == int(job_id))
    if len(ids) < 2:
        raise InputError(f"cvat job {job_id}: {len(ids)} consensus replica job(s); agreement needs two "
                         "(create the task with consensus replicas)")
    return ids
