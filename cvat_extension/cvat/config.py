"""The ``sync:`` section of ``serverless.yaml``: everything the CVAT loop needs to run.

Secrets never live in the file. The file names the *environment variables* that hold them
(``token_env``, ``password_env``, ``webhook.secret_env``), and :class:`SyncConfig` reads them
at connect time; ``repr`` of every config object hides them, so a config can be logged.

Unknown keys are errors (a typo such as ``reveiwer`` would otherwise silently do nothing),
and every error names the key path, e.g. ``sync.review.on_findings``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cvat_extension._enums import parse_enum
from cvat_extension.cvat.attention_config import AttentionSettings
from cvat_extension.errors import ConfigError

__all__ = [
    "CvatConfig",
    "JobsConfig",
    "MergeConfig",
    "OnFindings",
    "RetryConfig",
    "ReviewConfig",
    "StateConfig",
    "SyncConfig",
    "WebhookConfig",
    "load_sync_config",
]

JOB_STATES = ("new", "in progress", "completed", "rejected")
JOB_STAGES = ("annotation", "validation", "acceptance")


class OnFindings(str, Enum):
    """What happens to a job that gets review items."""

    #: ``stage=validation, state=new``, assigned to the configured reviewer.
    REVIEW = "review"
    #: ``stage=annotation, state=rejected``: back to the annotator.
    REJECT = "reject"
    #: Issues only; the job keeps its stage and state.
    NONE = "none"


def _section(raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    return raw


def _check_keys(raw: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are {', '.join(sorted(allowed))}"
        )


def _num(raw: Mapping[str, Any], key: str, default: float, path: str, *, lo: float = 0.0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}.{key}: expected a number, got {value!r}")
    if value < lo:
        raise ConfigError(f"{path}.{key}: must be >= {lo}, got {value!r}")
    return float(value)


def _bool(raw: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}.{key}: expected true or false, got {value!r}")
    return value


def _str(raw: Mapping[str, Any], key: str, default: str | None, path: str) -> str | None:
    value = raw.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}.{key}: expected a string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CvatConfig:
    """Where CVAT is and how to log in.

    Attributes:
        url: server URL, e.g. ``http://localhost:8080``.
        org: organization slug; empty string = personal workspace; None = no org context.
        token_env: environment variable holding a personal access token (preferred).
        user_env: environment variable holding the user name (password login).
        password_env: environment variable holding the password.
        timeout_s: per-request timeout. Lower it to notice a hung server sooner; raise it for
            very large annotation payloads on slow servers.
        source_fps: frame rate of the tasks' videos. CVAT does not record it; with each
            task's frame step it gives the annotated frames per second that the checks and
            the merge scale their thresholds by (``core/timebase.py``). 0: 30 fps assumed
            when a task has a frame step, the checks' reference rate otherwise.
    """

    url: str = "http://localhost:8080"
    org: str | None = None
    token_env: str = "CVAT_ACCESS_TOKEN"
    user_env: str = "CVAT_USER"
    password_env: str = "CVAT_PASSWORD"
    timeout_s: float = 60.0
    source_fps: float = 0.0

    def credentials(self) -> tuple[str, str] | str:
        """The token (a ``str``) or ``(user, password)`` read from the environment.

        Raises:
            ConfigError: none of the named variables is set (names them, never values).
        """
        token = os.environ.get(self.token_env, "")
        if token:
            return token
        user = os.environ.get(self.user_env, "")
        password = os.environ.get(self.password_env, "")
        if user and password:
            return (user, password)
        raise ConfigError(
            f"sync.cvat: no CVAT credentials: set ${self.token_env} (personal access token) "
            f"or ${self.user_env} and ${self.password_env}"
        )


@dataclass(frozen=True, slots=True)
class JobsConfig:
    """Which jobs count as finished work.

    Attributes:
        query: plain query parameters of ``GET /api/jobs`` (``state``, ``stage``, ``type``,
            ``task_id``, ``project_id``, ``assignee``...). Default: ``state=completed`` and
            ``type=annotation`` (ground-truth and consensus replica jobs are not reviewed).
        filter: optional CVAT JSON-logic filter (the ``filter`` query parameter), given as
            a mapping or a JSON string, e.g. ``{"==": [{"var": "stage"}, "acceptance"]}``.
        page_size: page size for listing; larger pages mean fewer calls.
    """

    query: Mapping[str, Any] = field(
        default_factory=lambda: {"state": "completed", "type": "annotation"}
    )
    filter: str | None = None
    page_size: int = 100


@dataclass(frozen=True, slots=True)
class MergeConfig:
    """Fragment merge policy.

    Attributes:
        enabled: apply merges found by ``core/merge.py`` (per job only).
        min_score: merges scored below this are left for review instead of applied; raise it
            to merge only near-certain fragments.
        thin_keyframes: also remove keyframes that interpolation reproduces (lossless within
            ``thin_tolerance_px``) on tracks we write anyway.
        thin_tolerance_px: max corner error accepted when thinning.
        options: extra keyword options passed to the merge module unchanged.
    """

    enabled: bool = True
    min_score: float = 0.5
    thin_keyframes: bool = False
    thin_tolerance_px: float = 0.5
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReviewConfig:
    """How review items come back to CVAT.

    Attributes:
        on_findings: ``review`` (validation stage, reviewer assigned), ``reject`` (back to the
            annotator) or ``none`` (issues only).
        reviewer: CVAT user name assigned on ``review``; None keeps the current assignee.
        clean_to_acceptance: move jobs without open items to ``stage=acceptance``.
        min_score: items below this score are not pushed (they stay in the report).
        frame_budget: max frames a reviewer is asked to look at per task (plan_review).
        min_items_per_job: the budget's floor: each job gets at least this many of its
            highest-scoring items (above ``min_score``) even when the frame budget is spent.
            On a short task the frame budget (3 % by default) admits a single item; the
            floor keeps real findings from being dropped there. 0 turns it off.
        options: extra keyword options passed to ``plan_review`` unchanged.
    """

    on_findings: OnFindings = OnFindings.REVIEW
    reviewer: str | None = None
    clean_to_acceptance: bool = False
    min_score: float = 0.0
    frame_budget: int | None = None
    min_items_per_job: int = 3
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where the loop keeps what it has done.

    Attributes:
        path: SQLite file (default) or a ``postgresql://`` URL (with the ``server`` extra).
        backup_dir: folder for an extra local copy of each per-job annotation backup; None =
            none. The backup itself always goes into the state store, so a worker on another
            host can resume a journal or ``restore`` without this host's disk.
        report_dir: folder of per-task HTML reports.
        lease_s: how long a worker owns a job; another worker may take it over after this.
    """

    path: str = ".cvat-track/state.sqlite"
    backup_dir: str | None = ".cvat-track/backups"
    report_dir: str = ".cvat-track/reports"
    lease_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retries of transient CVAT failures (5xx, timeouts, dropped connections).

    Attributes:
        attempts: total tries per call; after the last the job is left for the next run.
        backoff_s: first wait; doubles each try.
        max_backoff_s: cap on a single wait.
    """

    attempts: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """The webhook receiver.

    Attributes:
        host: address to bind.
        port: port to bind.
        secret_env: environment variable holding the webhook's shared secret.
        path: the only URL path accepted (the path of the webhook's target URL in CVAT).
        queue_path: SQLite file of the durable sync queue and of the deliveries seen.
        max_queue: jobs allowed to wait; more deliveries get 503 (CVAT can redeliver).
        dedupe_ttl_s: how long a delivery is remembered, so a redelivery syncs once.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    secret_env: str = "CVAT_WEBHOOK_SECRET"
    path: str = "/"
    queue_path: str = ".cvat-track/webhook-queue.sqlite"
    max_queue: int = 1000
    dedupe_ttl_s: float = 86400.0

    def secret(self) -> bytes:
        """The shared secret from the environment.

        Raises:
            ConfigError: the variable is unset or empty (refusing unsigned webhooks).
        """
        value = os.environ.get(self.secret_env, "")
        if not value:
            raise ConfigError(
                f"sync.webhook: ${self.secret_env} is not set; the receiver refuses to run "
                "without a shared secret"
            )
        return value.encode()


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """The whole ``sync:`` section.

    Attributes:
        cvat: server and login.
        jobs: which jobs are finished work.
        checks: mapping passed to ``ChecksConfig.from_mapping`` (check thresholds).
        merge: fragment merge policy.
        review: review push policy.
        state: state store, backups, reports.
        retry: transient-failure retries.
        webhook: webhook receiver.
        schedule_interval_min: how often scheduled runs happen (informational for the
            systemd timer / cron examples, and the ``sync`` loop without ``--once``).
        attention: attention checks (``cvat/attention_config.py``).
    """

    cvat: CvatConfig = field(default_factory=CvatConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    checks: Mapping[str, Any] = field(default_factory=dict)
    merge: MergeConfig = field(default_factory=MergeConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    state: StateConfig = field(default_factory=StateConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    schedule_interval_min: float = 15.0
    attention: AttentionSettings = field(default_factory=AttentionSettings)

    @classmethod
    def from_mapping(cls, raw: Any, *, base_dir: Path | None = None) -> SyncConfig:
        """Parse the ``sync:`` mapping; relative paths resolve against ``base_dir``.

        Raises:
            ConfigError: unknown key, wrong type or out-of-range value (names the key path).
        """
        root = _section(raw, "sync")
        _check_keys(
            root,
            {"cvat", "jobs", "checks", "merge", "review", "state", "retry", "webhook", "schedule", "attention"},
            "sync",
        )
        c = _section(root.get("cvat"), "sync.cvat")
        _check_keys(c, {"url", "org", "token_env", "user_env", "password_env", "timeout_s", "source_fps"},
                    "sync.cvat")
        cvat = CvatConfig(
            url=_str(c, "url", CvatConfig().url, "sync.cvat") or CvatConfig().url,
            org=_str(c, "org", None, "sync.cvat"),
            token_env=_str(c, "token_env", CvatConfig().token_env, "sync.cvat") or CvatConfig().token_env,
            user_env=_str(c, "user_env", CvatConfig().user_env, "sync.cvat") or CvatConfig().user_env,
            password_env=_str(c, "password_env", CvatConfig().password_env, "sync.cvat")
            or CvatConfig().password_env,
            timeout_s=_num(c, "timeout_s", CvatConfig().timeout_s, "sync.cvat", lo=0.01),
            source_fps=_num(c, "source_fps", 0.0, "sync.cvat"),
        )

        j = _section(root.get("jobs"), "sync.jobs")
        _check_keys(j, {"query", "filter", "page_size"}, "sync.jobs")
        query = dict(_section(j.get("query"), "sync.jobs.query")) if "query" in j else None
        if query is not None:
            if "state" in query and query["state"] not in JOB_STATES:
                raise ConfigError(
                    f"sync.jobs.query.state: unknown state {query['state']!r}; valid: {JOB_STATES}"
                )
            if "stage" in query and query["stage"] not in JOB_STAGES:
                raise ConfigError(
                    f"sync.jobs.query.stage: unknown stage {query['stage']!r}; valid: {JOB_STAGES}"
                )
        flt = j.get("filter")
        if isinstance(flt, Mapping):
            flt = json.dumps(flt)
        elif flt is not None:
            if not isinstance(flt, str):
                raise ConfigError(f"sync.jobs.filter: expected a mapping or JSON string, got {flt!r}")
            try:
                json.loads(flt)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"sync.jobs.filter: not valid JSON: {exc}") from exc
        jobs = JobsConfig(
            query=query if query is not None else JobsConfig().query,
            filter=flt,
            page_size=int(_num(j, "page_size", 100, "sync.jobs", lo=1)),
        )

        checks = dict(_section(root.get("checks"), "sync.checks"))

        m = _section(root.get("merge"), "sync.merge")
        _check_keys(
            m, {"enabled", "min_score", "thin_keyframes", "thin_tolerance_px", "options"}, "sync.merge"
        )
        merge = MergeConfig(
            enabled=_bool(m, "enabled", True, "sync.merge"),
            min_score=_num(m, "min_score", MergeConfig().min_score, "sync.merge"),
            thin_keyframes=_bool(m, "thin_keyframes", False, "sync.merge"),
            thin_tolerance_px=_num(m, "thin_tolerance_px", 0.5, "sync.merge"),
            options=dict(_section(m.get("options"), "sync.merge.options")),
        )
        if merge.min_score > 1:
            raise ConfigError(f"sync.merge.min_score: must be in 0..1, got {merge.min_score}")

        r = _section(root.get("review"), "sync.review")
        _check_keys(
            r,
            {"on_findings", "reviewer", "clean_to_acceptance", "min_score", "frame_budget",
             "min_items_per_job", "options"},
            "sync.review",
        )
        try:
            on_findings = parse_enum(OnFindings, r.get("on_findings", "review"))
        except ConfigError as exc:
            raise ConfigError(f"sync.review.on_findings: {exc}") from exc
        budget = r.get("frame_budget")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"sync.review.frame_budget: expected a positive integer, got {budget!r}")
        floor = r.get("min_items_per_job", 3)
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
            raise ConfigError(f"sync.review.min_items_per_job: expected an integer >= 0, got {floor!r}")
        review = ReviewConfig(
            on_findings=on_findings,
            reviewer=_str(r, "reviewer", None, "sync.review"),
            clean_to_acceptance=_bool(r, "clean_to_acceptance", False, "sync.review"),
            min_score=_num(r, "min_score", 0.0, "sync.review"),
            frame_budget=budget,
            min_items_per_job=floor,
            options=dict(_section(r.get("options"), "sync.review.options")),
        )

        s = _section(root.get("state"), "sync.state")
        _check_keys(s, {"path", "backup_dir", "report_dir", "lease_s"}, "sync.state")

        def _path(key: str, default: str) -> str:
            value = _str(s, key, default, "sync.state") or default
            if "://" in value or base_dir is None or Path(value).is_absolute():
                return value
            return str(base_dir / value)

        state = StateConfig(
            path=_path("path", StateConfig().path),
            backup_dir=(None if "backup_dir" in s and s["backup_dir"] is None
                        else _path("backup_dir", StateConfig().backup_dir or "")),
            report_dir=_path("report_dir", StateConfig().report_dir),
            lease_s=_num(s, "lease_s", StateConfig().lease_s, "sync.state", lo=1),
        )

        t = _section(root.get("retry"), "sync.retry")
        _check_keys(t, {"attempts", "backoff_s", "max_backoff_s"}, "sync.retry")
        retry = RetryConfig(
            attempts=int(_num(t, "attempts", 4, "sync.retry", lo=1)),
            backoff_s=_num(t, "backoff_s", 1.0, "sync.retry"),
            max_backoff_s=_num(t, "max_backoff_s", 30.0, "sync.retry"),
        )

        w = _section(root.get("webhook"), "sync.webhook")
        _check_keys(w, {"host", "port", "secret_env", "path", "queue_path", "max_queue", "dedupe_ttl_s"},
                    "sync.webhook")
        hook_path = _str(w, "path", "/", "sync.webhook") or "/"
        if not hook_path.startswith("/"):
            raise ConfigError(f"sync.webhook.path: must start with '/', got {hook_path!r}")
        webhook = WebhookConfig(
            host=_str(w, "host", "127.0.0.1", "sync.webhook") or "127.0.0.1",
            port=int(_num(w, "port", 8765, "sync.webhook")),
            secret_env=_str(w, "secret_env", WebhookConfig().secret_env, "sync.webhook")
            or WebhookConfig().secret_env,
            path=hook_path,
            queue_path=_str(w, "queue_path", WebhookConfig().queue_path, "sync.webhook") or WebhookConfig().queue_path,
            max_queue=int(_num(w, "max_queue", 1000, "sync.webhook", lo=1)),
            dedupe_ttl_s=_num(w, "dedupe_ttl_s", 86400.0, "sync.webhook", lo=1),
        )

        sch = _section(root.get("schedule"), "sync.schedule")
        _check_keys(sch, {"interval_min"}, "sync.schedule")
        return cls(
            cvat=cvat,
            jobs=jobs,
            checks=checks,
            merge=merge,
            review=review,
            state=state,
            retry=retry,
            webhook=webhook,
            schedule_interval_min=_num(sch, "interval_min", 15.0, "sync.schedule", lo=0.01),
            attention=AttentionSettings.from_mapping(root.get("attention")),
        )


def load_sync_config(path: str | Path) -> SyncConfig:
    """Read ``path`` (``serverless.yaml``) and parse its ``sync:`` section.

    Relative state/backup/report paths resolve against the file's folder.

    Raises:
        ConfigError: the file is missing, is not YAML, or its ``sync:`` section is invalid.
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        return SyncConfig.from_mapping(doc.get("sync"), base_dir=p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
