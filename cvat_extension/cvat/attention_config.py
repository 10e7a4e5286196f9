"""The ``sync.attention`` section: attention checks (planted misses) and how to flag annotators.

    sync:
      attention:
        enabled: true          # sync measures finished jobs that hold planted misses
        min_restored: 0.7      # flag annotators who restore less than this fraction
        flag: issue            # issue | comment | none
        per_job: 5             # misses `cvat-track annotate --attention-checks` plants per job
        min_score: 0.6         # what counts as clearly visible (see core/attention.py)
        min_height_px: 24
        min_iou: 0.5
        seed: null             # null: the task id (different tasks, different frames)

``cvat-track attention`` reads the same section (its flags override it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cvat_extension._enums import parse_enum
from cvat_extension.core.attention import AttentionConfig
from cvat_extension.errors import ConfigError

__all__ = ["AttentionSettings", "FlagMode"]


class FlagMode(str, Enum):
    """How an annotator below the bar is told in CVAT."""

    #: One issue on the job (at its first frame, over the whole image).
    ISSUE = "issue"
    #: A comment on the job's open ``[cvat-track ...]`` review issue; an issue when it has none.
    COMMENT = "comment"
    #: Report and JSON only.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class AttentionSettings:
    """Attention checks of the CVAT loop.

    Attributes:
        enabled: ``sync`` measures finished jobs that hold planted misses (and remembers
            every finished job's annotator for ``cvat-track attention``'s quality report).
        min_restored: fraction of planted misses an annotator must restore; below it the job
            is flagged. 0.7 follows the usual "retrain above 30 % missed" guidance.
        flag: how a job below the bar is flagged in CVAT.
        plant: what ``annotate`` plants (count per job, what is clearly visible, IoU).
        seed: seed of the choice; None uses the task id.
    """

    enabled: bool = False
    min_restored: float = 0.7
    flag: FlagMode = FlagMode.ISSUE
    plant: AttentionConfig = field(default_factory=AttentionConfig)
    seed: int | None = None

    @classmethod
    def from_mapping(cls, raw: Any, path: str = "sync.attention") -> AttentionSettings:
        """Parse the section (None: defaults).

        Raises:
            ConfigError: unknown key or bad value (names the key path).
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
        plant_keys = {"per_job", "min_score", "min_height_px", "min_area_fraction", "edge_margin_px",
                      "max_covered_fraction", "min_iou"}
        allowed = {"enabled", "min_restored", "flag", "seed"} | plant_keys
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"valid keys are {', '.join(sorted(allowed))}")
        enabled = raw.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{path}.enabled: expected true or false, got {enabled!r}")
        bar = raw.get("min_restored", 0.7)
        if isinstance(bar, bool) or not isinstance(bar, (int, float)) or not 0 <= bar <= 1:
            raise ConfigError(f"{path}.min_restored: expected a number in [0, 1], got {bar!r}")
        seed = raw.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"{path}.seed: expected a non-negative integer or null, got {seed!r}")
        try:
            flag = parse_enum(FlagMode, raw.get("flag", "issue"))
        except ConfigError as exc:
            raise ConfigError(f"{path}.flag: {exc}") from exc
        values: dict[str, Any] = {}
        for key in plant_keys & set(raw):
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{path}.{key}: expected a number, got {value!r}")
            values[key] = int(value) if key == "per_job" else float(value)
        if "per_job" in raw and raw["per_job"] != int(raw["per_job"]):
            raise ConfigError(f"{path}.per_job: expected an integer, got {raw['per_job']!r}")
        try:
            plant = AttentionConfig(**values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return cls(enabled=enabled, min_restored=float(bar), flag=flag, plant=plant, seed=seed)
