"""A MOT Challenge folder TrackEval reads unchanged.

Layout (TrackEval's ``MotChallenge2DBox`` defaults, with ``GT_FOLDER`` = the export folder,
``SEQMAP_FOLDER`` = ``<export>/seqmaps``, ``BENCHMARK`` and ``SPLIT_TO_EVAL`` as named)::

    OUT/<BENCHMARK>-<SPLIT>/<SEQ>/gt/gt.txt
    OUT/<BENCHMARK>-<SPLIT>/<SEQ>/seqinfo.ini
    OUT/seqmaps/<BENCHMARK>-<SPLIT>.txt

``gt.txt`` is written by :func:`cvat_extension.io.mot.write_mot` (frames from 1, MOT17
classes, conf = the row's score, visibility). ``seqinfo.ini`` needs the sequence length
(TrackEval reads ``seqLength`` from it); a sequence whose length is unknown is exported with
the last annotated frame as its length and a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from cvat_extension.core.tracks import SequenceInfo
from cvat_extension.dataset.sequences import Sequence as DatasetSequence

__all__ = ["seqinfo_text", "write_mot_challenge"]


def seqinfo_text(seq: DatasetSequence) -> str:
    """``seqinfo.ini`` of a sequence (MOT17's keys and order)."""
    info = seq.info
    fps = f"{seq.fps:g}"
    return (
        "[Sequence]\n"
        f"name={seq.name}\n"
        "imDir=img1\n"
        f"frameRate={fps}\n"
        f"seqLength={seq.num_frames}\n"
        f"imWidth={info.width}\n"
        f"imHeight={info.height}\n"
        "imExt=.jpg\n"
    )


def write_mot_challenge(
    folder: Path,
    splits: Mapping[str, Sequence[DatasetSequence]],
    *,
    benchmark: str,
) -> list[str]:
    """Write the sequences of each split into ``folder``; return warnings.

    ``folder`` should be a staged folder (see :class:`~cvat_extension.io.outputs.OutputPlan`):
    nothing here is atomic across files.
    """
    from cvat_extension.io.mot import write_mot

    warnings: list[str] = []
    (folder / "seqmaps").mkdir(parents=True, exist_ok=True)
    for split, seqs in splits.items():
        root = folder / f"{benchmark}-{split}"
        for seq in seqs:
            if not seq.info.num_frames:
                warnings.append(f"{seq.name}: length unknown; seqLength={seq.num_frames} (last annotated frame)")
            if not (seq.info.width and seq.info.height):
                warnings.append(f"{seq.name}: frame size unknown; imWidth/imHeight written as 0")
            gt = root / seq.name / "gt" / "gt.txt"
            gt.parent.mkdir(parents=True, exist_ok=True)
            info = SequenceInfo(seq.num_frames, seq.info.width, seq.info.height, 1, (), seq.name)
            write_mot(gt, seq.tracks, info=info)
            (root / seq.name / "seqinfo.ini").write_text(seqinfo_text(seq), encoding="utf-8")
        names = "".join(f"{s.name}\n" for s in seqs)
        (folder / "seqmaps" / f"{benchmark}-{split}.txt").write_text("name\n" + names, encoding="utf-8")
    return warnings
