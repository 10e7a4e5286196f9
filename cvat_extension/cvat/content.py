"""Comparable content of CVAT annotation JSON: canonical form, hashes, request payloads.

Why a canonical form: CVAT re-numbers the shapes of a track every time the track is written
(``PATCH action=update`` replaces the whole ``shapes`` list), fills defaults we may omit
(``group``, ``z_order``, ``rotation``, empty ``attributes``) and bumps ``version``. To tell
"someone edited this job" from "this is what our own write produced" we compare a projection
that keeps everything an annotator can change (object ids, labels, frames, points, flags,
attributes) and drops what only the server controls.

Points are rounded to 1e-6 px so that float round trips through JSON cannot flip a hash.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "apply_ops",
    "canonical",
    "content_hash",
    "loose_hash",
    "request_payload",
    "strip_ids",
]

_KINDS = ("tags", "shapes", "tracks")


def _attrs(items: Iterable[Mapping[str, Any]] | None) -> list[list[Any]]:
    return sorted([[int(a.get("spec_id", 0)), str(a.get("value", ""))] for a in items or []])


def _points(values: Sequence[float] | None) -> list[float]:
    return [round(float(v), 6) for v in values or []]


def _shape(s: Mapping[str, Any], *, keep_id: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": s.get("type", "rectangle"),
        "frame": int(s.get("frame", 0)),
        "points": _points(s.get("points")),
        "rotation": round(float(s.get("rotation", 0.0) or 0.0), 6),
        "outside": bool(s.get("outside", False)),
        "occluded": bool(s.get("occluded", False)),
        "z_order": int(s.get("z_order", 0) or 0),
        "attributes": _attrs(s.get("attributes")),
    }
    if keep_id:
        out["id"] = s.get("id")
        out["label_id"] = s.get("label_id")
        out["group"] = int(s.get("group") or 0)
        out["source"] = s.get("source", "manual")
        out["elements"] = sorted(
            (_shape(e, keep_id=True) for e in s.get("elements") or []),
            key=lambda e: (e["id"] or 0, e["frame"]),
        )
    return out


def _track(t: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": t.get("id"),
        "label_id": t.get("label_id"),
        "group": int(t.get("group") or 0),
        "source": t.get("source", "manual"),
        "attributes": _attrs(t.get("attributes")),
        "shapes": sorted(
            (_shape(s, keep_id=False) for s in t.get("shapes") or []), key=lambda s: s["frame"]
        ),
        "elements": sorted(
            (_track(e) for e in t.get("elements") or []), key=lambda e: (e["id"] or 0)
        ),
    }


def _tag(t: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": t.get("id"),
        "label_id": t.get("label_id"),
        "frame": int(t.get("frame", 0)),
        "group": int(t.get("group") or 0),
        "source": t.get("source", "manual"),
        "attributes": _attrs(t.get("attributes")),
    }


def canonical(raw: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The server-independent content of a ``{tags, shapes, tracks}`` document.

    Objects are sorted by id; tracked shapes lose their ids (CVAT re-creates them on every
    track update) and are sorted by frame.
    """
    return {
        "tags": sorted((_tag(t) for t in raw.get("tags") or []), key=lambda t: t["id"] or 0),
        "shapes": sorted(
            (_shape(s, keep_id=True) for s in raw.get("shapes") or []), key=lambda s: s["id"] or 0
        ),
        "tracks": sorted((_track(t) for t in raw.get("tracks") or []), key=lambda t: t["id"] or 0),
    }


def content_hash(raw: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`canonical` (hex): equal iff an annotator would see the same job."""
    blob = json.dumps(canonical(raw), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def apply_ops(raw: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What a job holds after PATCH ``ops`` (``{"action", "payload"}``), computed locally.

    ``update`` replaces objects by id, ``delete`` removes them by id, ``create`` appends
    (ids unknown: only used for hashing when no create is pending). This mirrors CVAT's
    ``partial_update_annotations`` semantics closely enough to predict its canonical form.
    """
    state = {k: {o.get("id"): copy.deepcopy(dict(o)) for o in raw.get(k) or []} for k in _KINDS}
    for op in ops:
        action = op["action"]
        payload = op["payload"]
        for kind in _KINDS:
            for obj in payload.get(kind) or []:
                if action == "delete":
                    state[kind].pop(obj.get("id"), None)
                else:
                    state[kind][obj.get("id")] = copy.deepcopy(dict(obj))
    return {k: list(v.values()) for k, v in state.items()}


def strip_ids(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without any object or shape ids (for PUT, where the server assigns them)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return {k: clean(v) for k, v in obj.items() if k != "id"}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return {k: clean(list(raw.get(k) or [])) for k in _KINDS}


def _filter_model(obj: Any, model_cls: Any) -> Any:
    """Keep only the keys the OpenAPI request model knows, recursing into nested models."""
    if not isinstance(obj, Mapping):
        return obj
    types = model_cls.openapi_types
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in model_cls.attribute_map or value is None:
            continue
        spec = types.get(key, ())
        inner = spec[0] if spec else None
        if isinstance(inner, list) and inner and hasattr(inner[0], "openapi_types"):
            out[key] = [_filter_model(v, inner[0]) for v in value]
        elif hasattr(inner, "openapi_types"):
            out[key] = _filter_model(value, inner)
        else:
            out[key] = value
    return out


def request_payload(raw: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``{tags, shapes, tracks}`` reduced to the fields cvat-sdk's request models accept.

    Read models carry read-only fields the request models reject; this keeps every writable
    field (so a round trip loses nothing an annotator made) and drops the rest.
    """
    from cvat_sdk import models

    kinds = {
        "tags": models.LabeledImageRequest,
        "shapes": models.LabeledShapeRequest,
        "tracks": models.LabeledTrackRequest,
    }
    return {k: [_filter_model(o, cls) for o in raw.get(k) or []] for k, cls in kinds.items()}


def loose_hash(raw: Mapping[str, Any]) -> str:
    """Like :func:`content_hash` but blind to object ids (a PUT re-numbers everything).

    Used to verify that a restore put back exactly what the backup holds.
    """
    canon = canonical(strip_ids(raw))
    for kind in _KINDS:
        canon[kind] = sorted(canon[kind], key=lambda o: json.dumps(o, sort_keys=True))
    blob = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
