"""A tiny MOT sequence whose card numbers are computed by hand in ``test_card_numbers``."""

from __future__ import annotations

from pathlib import Path

#: frame,id,x,y,w,h,conf,class,visibility (MOT17 GT): track 1 is small (10x10), occluded on
#: frames 2-3 (one occlusion event) and re-enters at frame 7 after a gap; track 2 is large;
#: track 3 is one "ignore" row (conf 0) of class 7 (static person).
ROWS = [
    "1,1,0,0,10,10,1,1,1", "2,1,1,0,10,10,1,1,0.2", "3,1,2,0,10,10,1,1,0.2", "4,1,3,0,10,10,1,1,1",
    "7,1,6,0,10,10,1,1,1", "8,1,7,0,10,10,1,1,1",
    "1,2,100,100,100,100,1,1,1", "2,2,102,100,100,100,1,1,1", "3,2,104,100,100,100,1,1,1",
    "2,3,300,300,50,50,0,7,1",
]
SEQINFO = ("[Sequence]\nname={name}\nimDir=img1\nframeRate=25\nseqLength=10\nimWidth=640\n"
           "imHeight=480\nimExt=.jpg\n")


def write_sequence(root: Path, name: str = "TINY-01", *, seqinfo: bool = True, rows: list[str] = ROWS) -> Path:
    """``root/name/gt/gt.txt`` (+ ``seqinfo.ini``); returns the sequence folder."""
    gt = root / name / "gt" / "gt.txt"
    gt.parent.mkdir(parents=True, exist_ok=True)
    gt.write_text("\n".join(rows) + "\n")
    if seqinfo:
        (root / name / "seqinfo.ini").write_text(SEQINFO.format(name=name))
    return root / name
