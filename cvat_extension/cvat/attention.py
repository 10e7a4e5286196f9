"""Attention checks against CVAT: plant misses at upload, measure them on finished jobs, flag.

Planting (:class:`MissPlanter`, called by ``annotate_task`` once the tracks are known and
before the first upload): choose the misses (``core/attention.py``), record plan and misses
in the state store in one transaction, and only then return the tracks without those
boxes. A run that dies during the upload keeps its record; the resumed run finds the plan
and withholds exactly the recorded boxes again. Nothing in CVAT marks a planted miss: the
track simply has no box on that frame, like any detector miss.

Measuring (:func:`measure_job`, used by ``cvat-track attention`` and by ``sync`` when
``sync.attention.enabled``): once a job holding misses is finished, read its annotations,
expand its tracks as CVAT does, and count the misses with an annotated box at IoU >= 0.5.
A job is measured once, on the annotator's own pass (before our sync writes anything to
it); the result is stored per job with the annotator's name.

Flagging (:func:`flag_job`): a job below ``min_restored`` gets one CVAT issue (or a comment
on its open review issue) naming the annotator and the percentage, tagged
``[cvat-track attention]`` so a rerun, or a run after a lost answer, never opens a second.
The planted frames themselves are never written to CVAT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cvat_extension.core.attention import (
    JobSpan,
    PlantedMisses,
    remove_planted,
    restored_mask,
    select_planted_misses,
)
from cvat_extension.core.tracks import Tracks
from cvat_extension.cvat.attention_config import AttentionSettings, FlagMode
from cvat_extension.cvat.attention_store import AttentionResult, AttentionStore, JobAnnotator
from cvat_extension.errors import CvatTrackError

__all__ = ["ATTENTION_TAG", "MissPlanter", "flag_job", "is_finished", "measure_job", "measure_jobs",
           "remember_annotators", "sync_attention"]

logger = logging.getLogger(__name__)

#: Marks our flag in an issue or comment (never a 16-hex review fingerprint, so the review
#: push and the quality report do not take it for a review item).
ATTENTION_TAG = "[cvat-track attention]"


class MissPlanter:
    """The ``annotate_task(plant=...)`` hook: record misses in the store, then withhold them.

    Args:
        store: the state store (SQL).
        settings: what to plant (``settings.plant``) and the seed (None: the task id).
    """

    def __init__(self, store: Any, settings: AttentionSettings) -> None:
        self.attention = AttentionStore(store)
        self.settings = settings
        self.planted: PlantedMisses = PlantedMisses.empty()

    def __call__(self, task_id: int, tracks: Tracks, jobs: Sequence[Mapping[str, Any]],
                 meta: Mapping[str, Any]) -> Tracks:
        """``tracks`` without the planted boxes (recorded first; a known plan is reused)."""
        if not self.attention.has_plan(task_id):
            frames = meta.get("frames") or [{}]
            size = (int(frames[0].get("width") or 0), int(frames[0].get("height") or 0))
            spans = [JobSpan(int(j["id"]), int(j["start_frame"]), int(j["stop_frame"])) for j in jobs]
            seed = self.settings.seed if self.settings.seed is not None else int(task_id)
            from dataclasses import asdict, replace

            cfg = replace(self.settings.plant, seed=seed)
            chosen = select_planted_misses(tracks, spans, size, cfg)
            self.attention.record_plan(task_id, chosen, seed=seed, settings=asdict(cfg))
            logger.info("task %d: %d attention checks planted over %d jobs", task_id, len(chosen), len(spans))
        else:
            logger.info("task %d: reusing the recorded attention checks", task_id)
        self.planted = self.attention.misses(task_id)
        return remove_planted(tracks, self.planted, min_iou=self.settings.plant.min_iou)


# ---------------------------------------------------------------------- measuring
def is_finished(job: Mapping[str, Any]) -> bool:
    """A job the annotator handed in: ``state=completed`` or moved past the annotation stage."""
    return str(job.get("state")) == "completed" or str(job.get("stage")) in ("validation", "acceptance")


def _assignee(job: Mapping[str, Any]) -> tuple[int | None, str]:
    a = job.get("assignee")
    if isinstance(a, Mapping) and a.get("id") is not None:
        return int(a["id"]), str(a.get("username") or f"user {a['id']}")
    return None, "(unassigned)"


def annotated_boxes(api: Any, job: Mapping[str, Any], labels: Sequence[Mapping[str, Any]]) -> Tracks:
    """Every visible box of a job per frame: its tracks expanded as CVAT does, plus shapes."""
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.io.cvat_json import parse_labeled_data

    raw = api.get_job_annotations(int(job["id"]))
    doc = parse_labeled_data(raw, labels=[{"id": int(lb["id"]), "name": str(lb["name"])} for lb in labels],
                             path=f"job {job['id']} annotations")
    dense = expand_keyframes(doc.tracks, stop_frame=int(job["stop_frame"]))
    parts = [dense.visible(), doc.shapes.visible()]
    return Tracks.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else dense


def measure_job(api: Any, attention: AttentionStore, job: Mapping[str, Any], *,
                labels: Sequence[Mapping[str, Any]] | None = None, min_iou: float = 0.5,
                annotator: JobAnnotator | None = None) -> AttentionResult | None:
    """Measure one finished job's planted misses and store the result (None: no misses).

    The annotator is the one remembered when the job was first seen finished, else the
    job's current assignee.
    """
    task_id, job_id = int(job["task_id"]), int(job["id"])
    planted = attention.misses(task_id, job_id)
    if not len(planted):
        return None
    if labels is None:
        labels = api.list_labels(task_id)
    boxes = annotated_boxes(api, job, labels)
    restored = restored_mask(planted, boxes, min_iou=min_iou)
    assignee_id, name = (annotator.assignee_id, annotator.assignee) if annotator else _assignee(job)
    result = AttentionResult(
        job_id=job_id, task_id=task_id, assignee_id=assignee_id, assignee=name,
        planted=len(planted), restored=int(restored.sum()),
        frames={int(f): bool(r) for f, r in zip(planted.frame, restored, strict=True)},
        measured_at=time.time(),
    )
    attention.record_result(result)
    logger.info("job %d (%s): %d of %d attention checks restored", job_id, name, result.restored, result.planted)
    return result


def remember_annotators(attention: AttentionStore, jobs: Sequence[Mapping[str, Any]]) -> None:
    """Remember who annotated each finished job (first sighting wins)."""
    now = time.time()
    for job in jobs:
        if not is_finished(job):
            continue
        assignee_id, name = _assignee(job)
        frames = int(job["stop_frame"]) - int(job["start_frame"]) + 1
        attention.remember_annotator(JobAnnotator(int(job["id"]), int(job["task_id"]), assignee_id, name,
                                                  frames, now))


def measure_jobs(api: Any, attention: AttentionStore, settings: AttentionSettings,
                 jobs: Sequence[Mapping[str, Any]], *, remeasure: bool = False,
                 flag: bool = True) -> list[AttentionResult]:
    """Measure (and flag per ``settings``) every finished job of ``jobs`` holding misses.

    Jobs measured before are skipped unless ``remeasure``; a flag already raised is not
    raised again.
    """
    remember_annotators(attention, jobs)
    planned = attention.planned_jobs()
    known = attention.annotators()
    labels_of: dict[int, list[dict[str, Any]]] = {}
    done: list[AttentionResult] = []
    for job in jobs:
        job_id = int(job["id"])
        if job_id not in planned or not is_finished(job):
            continue
        if not remeasure and attention.result(job_id) is not None:
            continue
        task_id = int(job["task_id"])
        if task_id not in labels_of:
            labels_of[task_id] = api.list_labels(task_id)
        previous = attention.result(job_id)
        result = measure_job(api, attention, job, labels=labels_of[task_id], min_iou=settings.plant.min_iou,
                             annotator=known.get(job_id))
        if result is None:
            continue
        if previous is not None and previous.flag_issue_id is not None:
            attention.set_flag_issue(job_id, previous.flag_issue_id)
            result = attention.result(job_id) or result
        done.append(result)
    if flag and settings.flag is not FlagMode.NONE:
        # Every measured job of ``jobs`` below the bar without a flag yet, not only those
        # measured now: a run that died (or met a CVAT error) between measuring and flagging
        # leaves its flag to the next run.
        everything = attention.results()
        totals = assignee_totals(everything)
        by_id = {int(j["id"]): j for j in jobs}
        for result in everything:
            if result.job_id in by_id and result.flag_issue_id is None and result.rate < settings.min_restored:
                issue_id = flag_job(api, by_id[result.job_id], result, totals.get(result.assignee, (0, 0)),
                                    settings)
                attention.set_flag_issue(result.job_id, issue_id)
    return done


def assignee_totals(results: Sequence[AttentionResult]) -> dict[str, tuple[int, int]]:
    """``{assignee: (restored, planted)}`` over ``results``."""
    totals: dict[str, tuple[int, int]] = {}
    for r in results:
        got, planted = totals.get(r.assignee, (0, 0))
        totals[r.assignee] = (got + r.restored, planted + r.planted)
    return totals


def flag_message(result: AttentionResult, total: tuple[int, int], min_restored: float) -> str:
    """The issue/comment text: who, how many, the bar; never which frames."""
    got, planted = total
    overall = f"; {got} of {planted} ({got / planted:.0%}) over all their checked jobs" if planted else ""
    return (f"attention check: {result.assignee} restored {result.restored} of {result.planted} "
            f"missing boxes in this job ({result.rate:.0%}), below {min_restored:.0%}{overall}. "
            f"Please review every frame for objects without a box. {ATTENTION_TAG}")


def flag_job(api: Any, job: Mapping[str, Any], result: AttentionResult, total: tuple[int, int],
             settings: AttentionSettings) -> int:
    """Raise the flag of a job below the bar in CVAT; returns the issue id it lives on.

    A flag already present in the job's comments (a run that died after creating it) is
    adopted instead of created again.
    """
    job_id = int(job["id"])
    message = flag_message(result, total, settings.min_restored)
    comments = api.list_job_comments(job_id)
    for c in comments:
        if ATTENTION_TAG in str(c.get("message", "")):
            return int(c["issue"])
    if settings.flag is FlagMode.COMMENT:
        open_ours = [i for i in api.list_job_issues(job_id) if not i.get("resolved")
                     and any(int(c["issue"]) == int(i["id"]) and "[cvat-track " in str(c.get("message", ""))
                             for c in comments)]
        if open_ours:
            issue_id = int(min(open_ours, key=lambda i: int(i["id"]))["id"])
            add_comment(api, issue_id, message)
            return issue_id
    meta_w, meta_h = _frame_size(api, int(job["task_id"]))
    created = api.create_issue(job_id=job_id, frame=int(job["start_frame"]),
                               position=[0.0, 0.0, float(meta_w), float(meta_h)], message=message)
    return int(created["id"])


def add_comment(api: Any, issue_id: int, message: str) -> None:
    """``POST /api/comments`` (not retried: reconciled through the tag on the next run)."""
    from cvat_sdk import models

    body = models.CommentWriteRequest(issue=issue_id, message=message)
    api.call("comments.create", lambda: api.api.comments_api.create(body, _parse_response=False),
             idempotent=False)


def _frame_size(api: Any, task_id: int) -> tuple[int, int]:
    frames = api.get_task_meta(task_id).get("frames") or [{}]
    return int(frames[0].get("width") or 1), int(frames[0].get("height") or 1)


# ---------------------------------------------------------------------- sync hook
def sync_attention(api: Any, store: Any, settings: AttentionSettings, job_ids: Sequence[int]) -> list[AttentionResult]:
    """``sync``'s hook: remember annotators and measure the finished jobs it is about to process.

    Runs before sync writes anything to those jobs, so the measurement is the annotator's
    pass. A CVAT failure here is logged and left for the next run (the job is measured
    then), never a reason to stop the sync.
    """
    attention = AttentionStore(store)
    try:
        jobs = [api.get_job(int(j)) for j in job_ids]
        return measure_jobs(api, attention, settings, jobs)
    except CvatTrackError as exc:
        logger.warning("attention checks: %s; measured on the next run", exc)
        return []


def result_rows(results: Sequence[AttentionResult]) -> list[dict[str, Any]]:
    """JSON rows of results (stable keys), including the frames for the admins."""
    return [{"job_id": r.job_id, "task_id": r.task_id, "assignee": r.assignee, "assignee_id": r.assignee_id,
             "planted": r.planted, "restored": r.restored, "rate": round(r.rate, 4),
             "frames": {str(k): v for k, v in sorted(r.frames.items())},
             "measured_at": r.measured_at, "flag_issue_id": r.flag_issue_id}
            for r in results]


def planter_from_manifest(per_job: int, manifest: str = "serverless.yaml") -> MissPlanter | None:
    """``annotate --attention-checks N``: a planter on the state store of ``manifest``.

    The store and the other attention settings come from the manifest's ``sync`` section
    when the file exists (so ``sync`` and ``cvat-track attention`` later find the record),
    else the default store ``.cvat-track/state.sqlite``. ``per_job`` 0 means no checks.

    Raises:
        ConfigError: the manifest's ``sync`` section is invalid.
    """
    from dataclasses import replace
    from pathlib import Path

    from cvat_extension.cvat.config import SyncConfig, load_sync_config
    from cvat_extension.cvat.state_store import open_state_store

    if per_job <= 0:
        return None
    cfg = load_sync_config(manifest) if Path(manifest).is_file() else SyncConfig()
    settings = replace(cfg.attention, plant=replace(cfg.attention.plant, per_job=per_job))
    return MissPlanter(open_state_store(cfg.state.path), settings)
