"""A logged-in cvat-sdk client with timeouts, retries and call counting.

Why a wrapper instead of the SDK's high-level proxies:

- every call needs a timeout (the proxies take none), so a hung server becomes a retryable
  failure instead of a hung sync;
- 5xx answers, timeouts and dropped connections are retried here with exponential backoff,
  but only for calls that are safe to repeat (GET, PUT, PATCH-update, job PATCH). A POST that
  failed ambiguously (the issue may exist) is *not* repeated blindly: the caller reconciles
  first (see ``review_push.py``);
- annotations are read as raw JSON (``_parse_response=False``): every field CVAT sends is
  kept for backups and round trips, and parsing is several times faster than building
  OpenAPI model objects for 100k shapes.

urllib3's own retries are limited to connection errors (nothing reached the server), so a
retried request is always a decision made here.

Secrets (token, password) are never logged or put into error messages.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cvat_extension.cvat.config import CvatConfig, RetryConfig
from cvat_extension.errors import CvatSyncError

__all__ = ["CvatApi", "CvatTransientError", "connect", "is_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CvatTransientError(CvatSyncError):
    """CVAT kept failing (5xx, timeout, connection) after all retries; retry the job later."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 5xx, 429, timeouts and connection errors."""
    import urllib3.exceptions
    from cvat_sdk.api_client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status is not None and (int(exc.status) >= 500 or int(exc.status) == 429)
    return isinstance(
        exc,
        (urllib3.exceptions.HTTPError, socket.timeout, TimeoutError, ConnectionError),
    )


def _describe(exc: BaseException) -> str:
    from cvat_sdk.api_client.exceptions import ApiException

    if isinstance(exc, ApiException):
        body = (exc.body or b"")
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        return f"HTTP {exc.status} {exc.reason}: {str(body)[:200]}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class CvatApi:
    """One CVAT session: the SDK client plus the retry policy and per-endpoint call counts.

    Attributes:
        client: the logged-in ``cvat_sdk.Client``.
        timeout_s: per-request timeout.
        retry: retry policy for transient failures.
        calls: number of HTTP requests attempted, per operation name (for benchmarks and the
            run summary).
        sleep: the wait function (tests pass a no-op to keep retries instant).
    """

    client: Any
    timeout_s: float
    retry: RetryConfig
    calls: Counter[str] = field(default_factory=Counter)
    sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ plumbing
    @property
    def api(self) -> Any:
        """``cvat_sdk.api_client.ApiClient`` (``.jobs_api``, ``.tasks_api``...)."""
        return self.client.api_client

    def call(self, op: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``fn`` (one HTTP request), retrying transient failures if ``idempotent``.

        Raises:
            CvatTransientError: still failing after ``retry.attempts`` tries, or a
                non-idempotent call failed transiently (the caller must reconcile).
            CvatSyncError: CVAT refused the request (4xx); the message names the operation.
        """
        from cvat_sdk.api_client.exceptions import ApiException

        attempts = self.retry.attempts if idempotent else 1
        delay = self.retry.backoff_s
        for attempt in range(1, attempts + 1):
            self.calls[op] += 1
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    if isinstance(exc, ApiException):
                        raise CvatSyncError(f"CVAT {op}: {_describe(exc)}") from exc
                    raise
                if attempt == attempts:
                    raise CvatTransientError(
                        f"CVAT {op}: {_describe(exc)} (after {attempt} "
                        f"attempt{'s' if attempt > 1 else ''})"
                    ) from exc
                logger.warning("CVAT %s failed (%s); retry %d/%d in %.1fs",
                               op, _describe(exc), attempt, attempts - 1, delay)
                self.sleep(delay)
                delay = min(delay * 2, self.retry.max_backoff_s)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _json(self, response: Any) -> Any:
        if isinstance(response, tuple):  # generated endpoints return (model, http response)
            response = response[1]
        data = response.data if hasattr(response, "data") else response
        return json.loads(data) if data else None

    def _raw(self, op: str, endpoint: Any, **kwargs: Any) -> Any:
        """Call a generated endpoint and return the parsed JSON body (no model objects)."""

        def go() -> Any:
            resp = endpoint(**kwargs, _parse_response=False, _request_timeout=self.timeout_s)
            return self._json(resp)

        return self.call(op, go)

    def paginated(self, op: str, endpoint: Any, **query: Any) -> list[dict[str, Any]]:
        """All pages of a list endpoint as JSON dicts (``count/next/results`` paging)."""
        results: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._raw(op, endpoint, page=page, **query)
            results.extend(body.get("results", []))
            if not body.get("next"):
                return results
            page += 1

    # ------------------------------------------------------------------ reads
    def about(self) -> dict[str, Any]:
        """``GET /api/server/about`` (checks URL and credentials early)."""
        return self._raw("server.about", self.api.server_api.retrieve_about)

    def list_jobs(self, **query: Any) -> list[dict[str, Any]]:
        """``GET /api/jobs`` with query parameters (incl. ``filter`` JSON-logic), all pages."""
        return self.paginated("jobs.list", self.api.jobs_api.list, **query)

    def get_job(self, job_id: int) -> dict[str, Any]:
        """``GET /api/jobs/{id}``."""
        return self._raw("jobs.retrieve", self.api.jobs_api.retrieve, id=job_id)

    def get_task(self, task_id: int) -> dict[str, Any]:
        """``GET /api/tasks/{id}``."""
        return self._raw("tasks.retrieve", self.api.tasks_api.retrieve, id=task_id)

    def get_task_meta(self, task_id: int) -> dict[str, Any]:
        """``GET /api/tasks/{id}/data/meta`` (frame count, sizes)."""
        return self._raw("tasks.data_meta", self.api.tasks_api.retrieve_data_meta, id=task_id)

    def list_labels(self, task_id: int) -> list[dict[str, Any]]:
        """``GET /api/labels?task_id=`` (project labels included), all pages."""
        return self.paginated("labels.list", self.api.labels_api.list, task_id=task_id)

    def get_job_annotations(self, job_id: int) -> dict[str, Any]:
        """``GET /api/jobs/{id}/annotations`` as raw JSON."""
        return self._raw("jobs.annotations.get", self.api.jobs_api.retrieve_annotations, id=job_id)

    def get_task_annotations(self, task_id: int) -> dict[str, Any]:
        """``GET /api/tasks/{id}/annotations`` as raw JSON."""
        return self._raw(
            "tasks.annotations.get", self.api.tasks_api.retrieve_annotations, id=task_id
        )

    def get_frame(self, task_id: int, frame: int, *, quality: str = "original") -> bytes:
        """One frame's encoded image bytes (``GET /api/tasks/{id}/data?type=frame``)."""
        return self._task_data(task_id, "frame", frame, quality)

    def get_chunk(self, task_id: int, number: int, *, quality: str = "original") -> bytes:
        """One data chunk's bytes (``GET /api/tasks/{id}/data?type=chunk``): a zip of the
        chunk's images for image tasks, an mp4 for video tasks (``data_original_chunk_type``)."""
        return self._task_data(task_id, "chunk", number, quality)

    def _task_data(self, task_id: int, kind: str, number: int, quality: str) -> bytes:
        """Raw bytes of ``GET /api/tasks/{id}/data?type=<kind>&number=`` (op ``tasks.<kind>``)."""

        def go() -> bytes:
            resp = self.api.tasks_api.retrieve_data(
                task_id, type=kind, number=number, quality=quality,
                _parse_response=False, _request_timeout=self.timeout_s,
            )
            if isinstance(resp, tuple):
                resp = resp[1]
            return bytes(resp.data)

        return self.call(f"tasks.{kind}", go)

    def list_job_issues(self, job_id: int) -> list[dict[str, Any]]:
        """``GET /api/issues?job_id=``, all pages."""
        return self.paginated("issues.list", self.api.issues_api.list, job_id=job_id)

    def list_job_comments(self, job_id: int) -> list[dict[str, Any]]:
        """``GET /api/comments?job_id=``, all pages (one call per page, not per issue)."""
        return self.paginated("comments.list", self.api.comments_api.list, job_id=job_id)

    def find_user_id(self, username: str) -> int:
        """Id of the CVAT user named ``username``.

        Raises:
            CvatSyncError: no such user.
        """
        users = self.paginated("users.list", self.api.users_api.list, username=username)
        for user in users:
            if user.get("username") == username:
                return int(user["id"])
        raise CvatSyncError(f"CVAT user {username!r} not found (sync.review.reviewer)")

    # ------------------------------------------------------------------ writes
    def patch_job_annotations(self, job_id: int, action: str, payload: Mapping[str, Any]) -> None:
        """``PATCH /api/jobs/{id}/annotations?action=`` with a ``{tags, shapes, tracks}`` body.

        Retried on transient failure: ``update`` replaces whole objects by id and ``delete``
        of an id already gone changes nothing, so repeating either is safe.
        """
        from cvat_sdk import models

        from cvat_extension.cvat.content import request_payload

        payload = request_payload(payload)
        body = models.PatchedLabeledDataRequest(
            tags=[models.LabeledImageRequest(**t) for t in payload.get("tags", [])],
            shapes=[models.LabeledShapeRequest(**s) for s in payload.get("shapes", [])],
            tracks=[models.LabeledTrackRequest(**t) for t in payload.get("tracks", [])],
        )
        self.call(
            f"jobs.annotations.{action}",
            lambda: self.api.jobs_api.partial_update_annotations(
                action, job_id, patched_labeled_data_request=body,
                _parse_response=False, _request_timeout=self.timeout_s,
            ),
        )

    def put_job_annotations(self, job_id: int, payload: Mapping[str, Any]) -> None:
        """``PUT /api/jobs/{id}/annotations``: replace everything in the job (restore only)."""
        from cvat_sdk import models

        from cvat_extension.cvat.content import request_payload

        payload = request_payload(payload)
        body = models.LabeledDataRequest(
            version=0,
            tags=[models.LabeledImageRequest(**t) for t in payload.get("tags", [])],
            shapes=[models.LabeledShapeRequest(**s) for s in payload.get("shapes", [])],
            tracks=[models.LabeledTrackRequest(**t) for t in payload.get("tracks", [])],
        )
        self.call(
            "jobs.annotations.put",
            lambda: self.api.jobs_api.update_annotations(
                job_id, labeled_data_request=body,
                _parse_response=False, _request_timeout=self.timeout_s,
            ),
        )

    def update_job(self, job_id: int, **fields: Any) -> dict[str, Any]:
        """``PATCH /api/jobs/{id}`` (stage, state, assignee); returns the updated job."""
        from cvat_sdk import models

        body = models.PatchedJobWriteRequest(**fields)
        return self._raw(
            "jobs.update", self.api.jobs_api.partial_update, id=job_id,
            patched_job_write_request=body,
        )

    def create_issue(
        self, *, job_id: int, frame: int, position: list[float], message: str,
        assignee: int | None = None,
    ) -> dict[str, Any]:
        """``POST /api/issues``; not retried (a lost answer may hide a created issue).

        Raises:
            CvatTransientError: the request failed transiently; reconcile before retrying.
        """
        from cvat_sdk import models

        fields: dict[str, Any] = dict(frame=frame, position=position, job=job_id, message=message)
        if assignee is not None:
            fields["assignee"] = assignee
        body = models.IssueWriteRequest(**fields)

        def go() -> Any:
            resp = self.api.issues_api.create(
                body, _parse_response=False, _request_timeout=self.timeout_s
            )
            return self._json(resp)

        return self.call("issues.create", go, idempotent=False)


    def update_issue(self, issue_id: int, **fields: Any) -> dict[str, Any]:
        """``PATCH /api/issues/{id}`` (``resolved``, ``position``, ``assignee``): idempotent."""
        from cvat_sdk import models

        body = models.PatchedIssueWriteRequest(**fields)
        return self._raw("issues.update", self.api.issues_api.partial_update, id=issue_id,
                         patched_issue_write_request=body)

    def create_comment(self, issue_id: int, message: str) -> dict[str, Any]:
        """``POST /api/comments``; not retried (a lost answer may hide a created comment)."""
        from cvat_sdk import models

        body = models.CommentWriteRequest(issue=issue_id, message=message)

        def go() -> Any:
            resp = self.api.comments_api.create(
                body, _parse_response=False, _request_timeout=self.timeout_s
            )
            return self._json(resp)

        return self.call("comments.create", go, idempotent=False)


def connect(cfg: CvatConfig, retry: RetryConfig | None = None) -> CvatApi:
    """Log in to CVAT with the credentials named in ``cfg`` and return a :class:`CvatApi`.

    A personal access token wins over user/password. The server version is checked with a
    warning only (CVAT 2.73 works with SDK 2.80; see cvat-interfaces.md §6).

    Raises:
        ConfigError: no credentials in the environment.
        CvatSyncError: the server cannot be reached or refuses the login.
    """
    import urllib3
    from cvat_sdk import Client
    from cvat_sdk.core.client import AccessTokenCredentials, Config, PasswordCredentials

    creds = cfg.credentials()
    retry = retry or RetryConfig()
    client = Client(cfg.url, config=Config(), check_server_version=False)
    # Only connection errors (nothing sent) are retried inside urllib3; everything else is
    # decided by CvatApi.call, which knows whether an operation is safe to repeat.
    client.api_client.rest_client.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(
        total=2, connect=2, read=0, status=0, other=0, redirect=2, backoff_factor=0.2
    )
    api = CvatApi(client=client, timeout_s=cfg.timeout_s, retry=retry)
    try:
        if isinstance(creds, str):
            client.login(AccessTokenCredentials(creds))
        else:
            api.call("auth.login", lambda: client.login(PasswordCredentials(*creds)))
    except CvatSyncError:
        raise
    except Exception as exc:
        raise CvatSyncError(f"CVAT login at {cfg.url} failed: {_describe(exc)}") from exc
    if cfg.org is not None:
        client.organization_slug = cfg.org
    about = api.about()
    try:
        # /server/about needs no login: ask who we are, so a bad token fails here, clearly.
        me = api._raw("users.self", client.api_client.users_api.retrieve_self)
    except CvatSyncError as exc:
        which = f"${cfg.token_env}" if isinstance(creds, str) else f"${cfg.user_env}/${cfg.password_env}"
        raise CvatSyncError(f"CVAT login at {cfg.url} failed (check {which}): {exc}") from exc
    logger.info("logged in as %s", me.get("username", "?") if isinstance(me, dict) else "?")
    logger.info("connected to CVAT %s at %s", about.get("version", "?"), cfg.url)
    return api
