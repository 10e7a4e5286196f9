"""A faithful CVAT stand-in HTTP server for tests, driven through the real ``cvat-sdk``.

``CvatStandin`` (``server.py``) serves CVAT's REST API subset on 127.0.0.1 with a random
port; ``store.py`` keeps the state; ``annotations.py`` reproduces CVAT's per-job
annotation storage and job-boundary behaviour; ``plugin.py`` provides the pytest
fixtures ``cvat_standin`` and ``cvat_client``.

Test-only controls on :class:`CvatStandin` (Python methods, never HTTP endpoints):

- ``seed_user(username, password="password", *, is_superuser=False) -> user id``;
  ``create_access_token(user_id) -> PAT`` (send as ``AccessTokenCredentials``);
- ``seed_project(name) -> id``; ``seed_task(name, labels, frames, *, segment_size=0,
  overlap=None, project=None, mode="annotation") -> task id``
  (``overlap=None``: CVAT's default, 5 for interpolation/video tasks, 0 for image tasks;
  capped at ``segment_size // 2``) (``frames``: image paths, or ``(n, w, h)``);
  ``job_ids(task_id)``, ``label_id(task_id, name)``;
- ``inject_fault(method, path_regex, *, status=500 | "timeout", on_call=1, times=1,
  when="before" | "after", delay_s=1.0)``, ``clear_faults()``;
- ``request_log`` (``LoggedRequest(method, path, query, status)``), ``calls(method,
  path_regex)``;
- ``edit_as_user(job_id, data, *, action="update" | "create" | "delete" | None)``,
  ``set_job(job_id, *, stage, state, assignee)``, ``job_annotations(job_id)``;
- ``webhook_deliveries``, ``wait_for_webhooks()``.

Behaviour a client must expect from CVAT (and gets here): annotation reads always have
``version == 0`` (use the job's ``updated_date`` to detect edits); tracks and shapes have
separate id sequences, so ``remove_annotations(ids=...)`` of cvat-sdk can hit both a track
and a shape with the same id; a task-level PATCH ``update`` of a track that spans two jobs
fails with 500 (id collision); ``Job.get_frame`` of cvat-sdk 2.80 needs ``quality``; the
SDK's urllib3 retries idempotent methods (GET, PUT, DELETE) 3 times after a read timeout, never POST/PATCH.
"""

from __future__ import annotations

from .server import CvatStandin, Fault, LoggedRequest

__all__ = ["CvatStandin", "Fault", "LoggedRequest"]
