"""Ground-truth-free QA checks on dense per-frame tracks, and one entry point to run them.

Each check lives in its own module (``check_<name>(tracks, config, *, detections, frames,
info) -> list[Finding]``) with a frozen config dataclass. :data:`CHECKS` maps names to
:class:`CheckSpec`; :func:`run_checks` runs a selection with one :class:`ChecksConfig`.

Input is dense per-frame :class:`~cvat_extension.core.tracks.Tracks` (expand CVAT keyframes
first); outside rows are ignored. Checks that need extra input skip silently without it:
``missing_object`` needs ``detections``, ``appearance_jump`` needs ``frames``; ``ghost`` and
``size_jump``/``short_track`` use them (and ``info``) when given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from types import ModuleType
from typing import Any

from cvat_extension.core.checks._common import Prepared, prepare
from cvat_extension.core.checks._matching import DetectionMatch, start_match, visible_boxes
from cvat_extension.core.checks.appearance_jump import AppearanceJumpConfig, check_appearance_jump
from cvat_extension.core.checks.box_jump import BoxJumpConfig, check_box_jump
from cvat_extension.core.checks.ghost import GhostConfig, check_ghost
from cvat_extension.core.checks.id_switch import IdSwitchConfig, check_id_switch
from cvat_extension.core.checks.label_change import LabelChangeConfig, check_label_change
from cvat_extension.core.checks.missing_object import MissingObjectConfig, check_missing_object
from cvat_extension.core.checks.short_track import ShortTrackConfig, check_short_track
from cvat_extension.core.checks.size_jump import SizeJumpConfig, check_size_jump
from cvat_extension.core.findings import Finding
from cvat_extension.core.frames import FrameSource
from cvat_extension.core.kernels import kernels_for
from cvat_extension.core.timebase import time_scale
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import ConfigError

__all__ = [
    "CHECKS",
    "AppearanceJumpConfig",
    "BoxJumpConfig",
    "CheckSpec",
    "ChecksConfig",
    "GhostConfig",
    "IdSwitchConfig",
    "LabelChangeConfig",
    "MissingObjectConfig",
    "ShortTrackConfig",
    "SizeJumpConfig",
    "run_checks",
]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check.

    Attributes:
        name: the finding kind it emits and its key in :data:`CHECKS`.
        func: ``func(tracks, config, *, detections=, frames=, info=, prepared=, matched=)
            -> list[Finding]``; ``prepared`` is ``_common.prepare(tracks)`` (computed when
            None), ``matched`` is ``_common.match_detections`` (with detections only),
            ``info`` gives the frame numbering of messages.
        config_type: its config dataclass (default-constructible).
        needs: extra inputs without which it reports nothing (``"detections"``, ``"frames"``).
    """

    name: str
    func: Callable[..., list[Finding]]
    config_type: type
    needs: tuple[str, ...] = ()


CHECKS: dict[str, CheckSpec] = {
    s.name: s
    for s in (
        CheckSpec("id_switch", check_id_switch, IdSwitchConfig),
        CheckSpec("box_jump", check_box_jump, BoxJumpConfig),
        CheckSpec("size_jump", check_size_jump, SizeJumpConfig),
        CheckSpec("label_change", check_label_change, LabelChangeConfig),
        CheckSpec("short_track", check_short_track, ShortTrackConfig),
        CheckSpec("ghost", check_ghost, GhostConfig),
        CheckSpec("missing_object", check_missing_object, MissingObjectConfig, ("detections",)),
        CheckSpec("appearance_jump", check_appearance_jump, AppearanceJumpConfig, ("frames",)),
    )
}


def _unknown(kind: str, names: Sequence[str], valid: Sequence[str]) -> ConfigError:
    return ConfigError(f"unknown {kind} {', '.join(map(repr, names))}; valid names are {', '.join(valid)}")


@dataclass(frozen=True)
class ChecksConfig:
    """One config per check; :meth:`from_mapping` parses YAML/CLI-style dictionaries."""

    id_switch: IdSwitchConfig = field(default_factory=IdSwitchConfig)
    box_jump: BoxJumpConfig = field(default_factory=BoxJumpConfig)
    size_jump: SizeJumpConfig = field(default_factory=SizeJumpConfig)
    label_change: LabelChangeConfig = field(default_factory=LabelChangeConfig)
    short_track: ShortTrackConfig = field(default_factory=ShortTrackConfig)
    ghost: GhostConfig = field(default_factory=GhostConfig)
    missing_object: MissingObjectConfig = field(default_factory=MissingObjectConfig)
    appearance_jump: AppearanceJumpConfig = field(default_factory=AppearanceJumpConfig)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> ChecksConfig:
        """Build from ``{"ghost": {"min_static_frames": 40}, ...}``.

        Raises:
            ConfigError: an unknown check or field name (listing the valid ones), a value of
                the wrong type or out of range.

        >>> ChecksConfig.from_mapping({"ghost": {"min_static_frames": 40}}).ghost.min_static_frames
        40
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"checks config must be a mapping of check name to settings, got {type(mapping).__name__}")
        bad = [k for k in mapping if k not in CHECKS]
        if bad:
            raise _unknown("check", bad, list(CHECKS))
        out = cls()
        for name, values in mapping.items():
            spec = CHECKS[name]
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise ConfigError(f"checks config {name!r} must be a mapping of settings, got {values!r}")
            valid = [f.name for f in fields(spec.config_type)]
            unknown = [k for k in values if k not in valid]
            if unknown:
                raise _unknown(f"setting of check {name!r}:", unknown, valid)
            typed: dict[str, Any] = {}
            for f in fields(spec.config_type):
                if f.name in values:
                    v = values[f.name]
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise ConfigError(f"checks config {name}.{f.name} must be a number, got {v!r}")
                    typed[f.name] = int(v) if f.type in ("int", int) and float(v).is_integer() else v
            try:
                cfg = spec.config_type(**typed)
            except TypeError as exc:
                raise ConfigError(f"checks config {name!r}: {exc}") from exc
            out = replace(out, **{name: cfg})
        return out

    def for_time_scale(self, scale: float) -> ChecksConfig:
        """Every check's thresholds for annotated frames ``scale`` reference intervals apart.

        See ``core/timebase.py``; ``scale`` 1 returns this config unchanged.

        >>> ChecksConfig().for_time_scale(3.0).short_track.min_length_frames
        2
        """
        if scale == 1.0:
            return self
        return replace(self, **{f.name: getattr(self, f.name).for_time_scale(scale)
                                for f in fields(self)
                                if hasattr(getattr(self, f.name), "for_time_scale")})


def run_checks(
    tracks: Tracks,
    *,
    config: ChecksConfig | None = None,
    detections: Tracks | None = None,
    frames: FrameSource | None = None,
    info: SequenceInfo | None = None,
    only: Sequence[str] | None = None,
    workers: int = 2,
    prepared: Prepared | None = None,
    kernels: ModuleType | None = None,
) -> list[Finding]:
    """Run the selected checks (all by default) and return their findings, sorted.

    ``workers`` threads run checks side by side: their time is spent in numpy calls and
    kernels (numba's ``nogil`` ones or their numpy twins) that release the GIL, so two
    cores give up to twice the throughput on large tasks. Results
    do not depend on it (findings are collected in check order, then sorted). Matching and
    window fits work in bounded chunks, so two checks at once stay within memory; use 1 to
    keep to one core. On threads the shared detection match starts first, split by frames,
    while this thread prepares; ghost and missing_object run last and wait for it.

    ``prepared`` is ``_common.prepare(tracks)`` when the caller already has it (``run_qa``
    shares one with the fragment merge); computed here otherwise.

    ``kernels`` is the module of per-row passes (``core/kernels.py``): by default the
    numpy twins below ``NUMBA_MIN_ROWS`` visible boxes, numba above; one choice for the
    whole run (a given ``prepared`` carries its own).

    ``info.fps`` (when known) scales every per-frame threshold to the time between annotated
    frames (:meth:`ChecksConfig.for_time_scale`): ``config`` holds the 30 fps values.

    Raises:
        ConfigError: ``only`` names an unknown check or ``workers`` < 1.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    cfg = (config or ChecksConfig()).for_time_scale(time_scale(info.fps) if info is not None else 1.0)
    names = list(CHECKS) if only is None else list(only)
    bad = [n for n in names if n not in CHECKS]
    if bad:
        raise _unknown("check", bad, list(CHECKS))
    # The shared preparation is computed once here and handed to every check explicitly:
    # a cache keyed on the Tracks object would keep a whole task's arrays alive after use.
    runnable = [n for n in names
                if all({"detections": detections, "frames": frames}[k] is not None for k in CHECKS[n].needs)]
    if not runnable:
        return []
    n_visible = int((~tracks.outside).sum())
    threaded = workers > 1 and n_visible >= _MIN_ROWS_FOR_THREADS
    if prepared is not None:
        kernels = prepared.kernels
    elif kernels is None:
        kernels = kernels_for(n_visible)
    with ThreadPoolExecutor(max_workers=workers) if threaded else nullcontext() as pool:
        # One same-frame pair search serves ghost (support) and missing_object (coverage).
        # It needs only the visible boxes: on threads it runs (split by frames) while this
        # thread prepares, instead of both running alone before the checks start.
        wait_match: Callable[[], DetectionMatch] | None = None
        if detections is not None and len(detections) and {"ghost", "missing_object"} & set(runnable):
            frame, xyxy = visible_boxes(tracks)
            wait_match = start_match(frame, xyxy, detections, cfg.ghost.min_det_score, pool, workers,
                                     kernels=kernels)
        # An idle pool helps prepare; while the match runs on it, it would only wait.
        if prepared is None:
            prepared = prepare(tracks, pool if wait_match is None else None, kernels)

        def one(name: str) -> list[Finding]:
            matched = wait_match() if wait_match is not None and name in _USES_MATCH else None
            return CHECKS[name].func(tracks, getattr(cfg, name), detections=detections,
                                     frames=frames, info=info, prepared=prepared, matched=matched)

        if pool is None or len(runnable) < 2:
            results = [one(name) for name in runnable]
        else:
            # Longest checks first so that the threads finish close together, except that
            # checks waiting for the detection match go last (the match is still running).
            order = sorted(runnable, key=lambda n: (n in _USES_MATCH, -_COST_RANK.get(n, 0)))
            done = dict(zip(order, pool.map(one, order)))
            results = [done[name] for name in runnable]
    return sorted((f for r in results for f in r), key=Finding.sort_key)


#: Below this many visible boxes threads cost more than they save.
_MIN_ROWS_FOR_THREADS = 200_000
#: Checks given the shared detection match.
_USES_MATCH = frozenset({"ghost", "missing_object"})
#: Rough relative cost of each check on large tasks (bench/bench_checks.py), for scheduling.
_COST_RANK = {"appearance_jump": 9, "missing_object": 8, "ghost": 7, "id_switch": 6}
