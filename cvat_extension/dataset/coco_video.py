"""COCO-video (TAO-style) JSON: videos, images, annotations with ``track_id``, categories.

Layout written (and read back):

- ``videos``: ``id``, ``name``, ``width``, ``height``, ``length`` (frames), ``fps``,
  ``frame_base`` (the user's first frame number, so a MOT export keeps its numbering);
- ``images``: one per frame: ``id``, ``video_id``, ``frame_index`` (0-based),
  ``file_name`` (``SEQ/img1/000001.jpg``, MOT's naming), ``width``, ``height``;
- ``annotations``: one per visible box: ``id``, ``image_id``, ``video_id``, ``track_id``,
  ``category_id``, ``bbox`` ``[x, y, w, h]`` (pixels, rounded to 1e-6 px so that
  ``xywh → xyxy → xywh`` is exact), ``area``, ``iscrowd`` 0, ``occluded``, ``visibility``,
  ``score``; with masks also ``segmentation`` as uncompressed COCO RLE
  (``{"size": [h, w], "counts": [...]}``, column-major, starting with background);
- ``tracks``: ``id``, ``video_id``, ``category_id``; ``categories``: ``id``, ``name``.

Track ids are unique in the file (TAO's rule): when two sequences use the same id, later
sequences are shifted past the largest id so far (``track_id_offset`` in their video entry;
reading subtracts it again, so a sequence keeps its own ids through a round trip).

Masks come from CVAT mask tracks (CVAT does not interpolate masks, so each visible mask
keyframe is one frame's mask). A mask track is paired with the box track of the same
non-zero ``group`` (what ``cvat-track propagate --write masks`` writes); a mask track with
no box track becomes a track of its own, boxed by its mask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.geometry import xywh_to_xyxy, xyxy_to_xywh
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.dataset.sequences import Sequence as DatasetSequence
from cvat_extension.errors import AnnotationFormatError

__all__ = ["coco_rle", "coco_video_document", "read_coco_video"]

_DECIMALS = 6


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE of a ``(H, W)`` bool mask (column-major, background first).

    >>> coco_rle(np.array([[0, 1], [0, 1]], bool))
    {'size': [2, 2], 'counts': [2, 2]}
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def _masks_by_track(seq: DatasetSequence) -> dict[int, dict[int, list[int]]]:
    """Box track id → frame → CVAT mask points; unpaired mask tracks under ``-(index+1)``."""
    groups: Mapping[int, int] = seq.extra.get("groups", {})
    by_group = {g: tid for tid, g in groups.items()}
    out: dict[int, dict[int, list[int]]] = {}
    for i, track in enumerate(seq.extra.get("mask_tracks", ())):
        key = by_group.get(int(track.get("group") or 0), -(i + 1))
        frames = out.setdefault(key, {})
        for shape in track.get("shapes") or []:
            if not shape.get("outside"):
                frames[int(shape["frame"])] = [int(v) for v in shape["points"]]
    return out


def coco_video_document(sequences: Sequence[DatasetSequence], *, masks: bool = False) -> dict[str, Any]:
    """The COCO-video document of ``sequences`` (visible boxes; masks when asked and present).

    Raises:
        InputError: masks asked for a sequence whose frame size is unknown.
    """
    from cvat_extension.core.masks import masks_to_xyxy, rle_to_mask
    from cvat_extension.errors import InputError

    names: list[str] = []
    for seq in sequences:
        for name in seq.tracks.labels:
            if name not in names:
                names.append(name)
    cat_id = {name: i + 1 for i, name in enumerate(names)}
    videos, images, annotations, tracks_out = [], [], [], []
    used: set[int] = set()
    next_image = next_ann = 1
    for vid, seq in enumerate(sequences, start=1):
        info = seq.info
        vis = seq.tracks.visible()
        ids = set(int(i) for i in vis.ids)
        offset = 0
        if ids & used:
            offset = max(used) + 1 - min(ids) if ids else 0
        mask_frames = _masks_by_track(seq) if masks else {}
        if mask_frames and not (info.width and info.height):
            raise InputError(f"{seq.name}: frame size unknown; masks cannot be decoded")
        extra_tracks: list[tuple[int, np.ndarray, np.ndarray]] = []
        if mask_frames:
            next_free = max([*ids, 0]) + 1
            for key in sorted(k for k in mask_frames if k < 0):
                frames = np.array(sorted(mask_frames[key]), dtype=np.int64)
                ms = np.stack([rle_to_mask(mask_frames[key][int(f)], info.width, info.height) for f in frames])
                extra_tracks.append((next_free, frames, masks_to_xyxy(ms)))
                mask_frames[next_free] = mask_frames.pop(key)
                next_free += 1
        all_ids = sorted(ids | {t for t, _, _ in extra_tracks})
        used.update(t + offset for t in all_ids)
        num_frames = seq.num_frames
        videos.append({"id": vid, "name": seq.name, "width": int(info.width), "height": int(info.height),
                       "length": int(num_frames), "fps": float(seq.fps), "frame_base": int(info.frame_base),
                       "track_id_offset": int(offset)})
        first_image = next_image
        for f in range(num_frames):
            images.append({"id": next_image, "video_id": vid, "frame_index": f,
                           "file_name": f"{seq.name}/img1/{f + 1:06d}.jpg",
                           "width": int(info.width), "height": int(info.height)})
            next_image += 1
        frame = np.concatenate([vis.frame, *[fr for _, fr, _ in extra_tracks]]) if extra_tracks else vis.frame
        tid = np.concatenate([vis.track_id, *[np.full(len(fr), t) for t, fr, _ in extra_tracks]]) if extra_tracks else vis.track_id
        xyxy = np.concatenate([vis.xyxy, *[b for _, _, b in extra_tracks]]) if extra_tracks else vis.xyxy
        label = np.concatenate([vis.label, *[np.zeros(len(fr), np.int32) for _, fr, _ in extra_tracks]]) if extra_tracks else vis.label
        n_box = len(vis)
        order = np.lexsort((tid, frame))
        xywh = np.round(xyxy_to_xywh(xyxy), _DECIMALS)
        first_cat: dict[int, int] = {}
        for r in order.tolist():
            f, t = int(frame[r]), int(tid[r])
            if f >= num_frames:
                continue
            cat = cat_id[seq.tracks.labels[int(label[r])]] if seq.tracks.labels else 1
            first_cat.setdefault(t, cat)
            box = [float(v) for v in xywh[r]]
            ann: dict[str, Any] = {
                "id": next_ann, "image_id": first_image + f, "video_id": vid, "track_id": t + offset,
                "category_id": cat, "bbox": box, "area": round(box[2] * box[3], _DECIMALS), "iscrowd": 0,
                "occluded": bool(vis.occluded[r]) if r < n_box else False,
                "visibility": round(float(vis.visibility[r]), 6) if r < n_box else 1.0,
                "score": round(float(vis.score[r]), 6) if r < n_box else 1.0,
            }
            pts = mask_frames.get(t, {}).get(f)
            if pts is not None:
                ann["segmentation"] = coco_rle(rle_to_mask(pts, info.width, info.height))
            annotations.append(ann)
            next_ann += 1
        tracks_out += [{"id": t + offset, "video_id": vid, "category_id": first_cat[t]}
                       for t in sorted(first_cat)]
    return {
        "info": {"description": "tracks exported by cvat-track", "format": "coco-video (TAO-style)"},
        "videos": videos, "images": images, "annotations": annotations, "tracks": tracks_out,
        "categories": [{"id": cat_id[n], "name": n} for n in names],
    }


def _need(obj: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise AnnotationFormatError(f"{where}: missing {key!r}", path=path)
    return obj[key]


def read_coco_video(path: str | Path) -> list[DatasetSequence]:
    """Sequences of a COCO-video JSON (ours or TAO-style), boxes and ids as stored.

    Raises:
        AnnotationFormatError: unreadable JSON or missing keys (the element named).
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnnotationFormatError(f"cannot read COCO-video JSON: {exc}", path=p) from exc
    for key in ("videos", "images", "annotations", "categories"):
        if not isinstance(doc, Mapping) or not isinstance(doc.get(key), list):
            raise AnnotationFormatError(f"not COCO-video JSON: no {key!r} list", path=p)
    cats = sorted(doc["categories"], key=lambda c: int(_need(c, "id", "categories[]", p)))
    names = tuple(str(_need(c, "name", "categories[]", p)) for c in cats)
    code = {int(c["id"]): i for i, c in enumerate(cats)}
    image_frame: dict[int, tuple[int, int]] = {}
    for im in doc["images"]:
        image_frame[int(_need(im, "id", "images[]", p))] = (
            int(_need(im, "video_id", "images[]", p)), int(_need(im, "frame_index", "images[]", p)))
    rows: dict[int, list[Any]] = {}
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotations[{i}]"
        image = int(_need(ann, "image_id", where, p))
        if image not in image_frame:
            raise AnnotationFormatError(f"{where}: image_id {image} is not in 'images'", path=p)
        vid, frame = image_frame[image]
        bbox = _need(ann, "bbox", where, p)
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise AnnotationFormatError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}", path=p)
        cat = int(_need(ann, "category_id", where, p))
        if cat not in code:
            raise AnnotationFormatError(f"{where}: category_id {cat} is not in 'categories'", path=p)
        rows.setdefault(vid, []).append((frame, int(_need(ann, "track_id", where, p)), bbox, code[cat],
                                         bool(ann.get("occluded", False)), float(ann.get("visibility", 1.0)),
                                         float(ann.get("score", 1.0))))
    out = []
    for video in doc["videos"]:
        vid = int(_need(video, "id", "videos[]", p))
        r = rows.get(vid, [])
        offset = int(video.get("track_id_offset", 0))  # back to the sequence's own ids
        tracks = Tracks.from_columns(
            frame=[x[0] for x in r], track_id=[x[1] - offset for x in r],
            xyxy=xywh_to_xyxy(np.asarray([x[2] for x in r], dtype=np.float64).reshape(-1, 4)),
            label=[x[3] for x in r], occluded=[x[4] for x in r], visibility=[x[5] for x in r],
            score=[x[6] for x in r], labels=names or ("object",),
        )
        info = SequenceInfo(num_frames=int(video.get("length") or 0), width=int(video.get("width") or 0),
                            height=int(video.get("height") or 0), frame_base=int(video.get("frame_base", 0)),
                            name=str(video.get("name", f"video-{vid}")))
        out.append(DatasetSequence(name=info.name, tracks=tracks, info=info, fps=float(video.get("fps", 30.0)),
                                   source=f"{p} video {vid}"))
    return out
