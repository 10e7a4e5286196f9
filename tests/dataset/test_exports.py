"""MOT Challenge export read by TrackEval itself; COCO-video round trip; masks as COCO RLE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dataset._fixture import write_sequence

from cvat_extension.core.masks import mask_to_rle, rle_to_mask
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.dataset.coco_video import coco_rle, coco_video_document, read_coco_video
from cvat_extension.dataset.mot_export import write_mot_challenge
from cvat_extension.dataset.sequences import Sequence, load_sequences


def trackeval_self_scores(export, benchmark, split, tmp_path):
    """HOTA, MOTA, IDF1 of TrackEval's MOT Challenge loader on the export vs its own GT."""
    # The adapter's loader applies the numpy-2 compatibility TrackEval 1.3 needs.
    from cvat_extension.metrics.trackeval_adapter import trackeval_module

    te = trackeval_module()
    trk = tmp_path / "trackers" / f"{benchmark}-{split}" / "self" / "data"
    trk.mkdir(parents=True)
    for seq in (export / f"{benchmark}-{split}").iterdir():
        rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        keep = rows[(rows[:, 7] == 1) & (rows[:, 6] > 0)]  # what a pedestrian tracker outputs
        out = np.c_[keep[:, :6], np.ones(len(keep)), -np.ones((len(keep), 3))]
        np.savetxt(trk / f"{seq.name}.txt", out, delimiter=",", fmt="%.10g")
    quiet = {"PRINT_CONFIG": False}
    ev = te.Evaluator({**quiet, "USE_PARALLEL": False, "PRINT_RESULTS": False, "OUTPUT_SUMMARY": False,
                       "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "TIME_PROGRESS": False})
    ds = te.datasets.MotChallenge2DBox({**quiet, "GT_FOLDER": str(export), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
                                        "SEQMAP_FOLDER": str(export / "seqmaps"), "BENCHMARK": benchmark,
                                        "SPLIT_TO_EVAL": split, "TRACKERS_TO_EVAL": ["self"]})
    res, msg = ev.evaluate([ds], [te.metrics.HOTA(quiet), te.metrics.CLEAR(quiet), te.metrics.Identity(quiet)])
    assert msg["MotChallenge2DBox"]["self"] == "Success"
    c = res["MotChallenge2DBox"]["self"]["COMBINED_SEQ"]["pedestrian"]
    return float(np.mean(c["HOTA"]["HOTA"])), float(c["CLEAR"]["MOTA"]), float(c["Identity"]["IDF1"])


def test_trackeval_reads_mot_export_unchanged(tmp_path):
    seqs = load_sequences([write_sequence(tmp_path / "in", "TINY-01"), write_sequence(tmp_path / "in", "TINY-02")])
    warnings = write_mot_challenge(tmp_path / "out", {"test": seqs}, benchmark="demo")
    assert warnings == []
    assert (tmp_path / "out" / "seqmaps" / "demo-test.txt").read_text() == "name\nTINY-01\nTINY-02\n"
    ini = (tmp_path / "out" / "demo-test" / "TINY-01" / "seqinfo.ini").read_text()
    assert "seqLength=10" in ini and "frameRate=25" in ini and "imWidth=640" in ini
    assert trackeval_self_scores(tmp_path / "out", "demo", "test", tmp_path) == (1.0, 1.0, 1.0)


def test_real_gt_export_scores_100(shared_data, tmp_path):
    seqs = load_sequences([shared_data / "motgt" / "MOT17-09"])
    write_mot_challenge(tmp_path / "out", {"train": seqs}, benchmark="MOT17")
    assert trackeval_self_scores(tmp_path / "out", "MOT17", "train", tmp_path) == (1.0, 1.0, 1.0)


def test_coco_video_round_trip_is_exact(tmp_path):
    seqs = load_sequences([write_sequence(tmp_path / "in", "TINY-01"), write_sequence(tmp_path / "in", "TINY-02")])
    doc = coco_video_document(seqs)
    assert [v["track_id_offset"] for v in doc["videos"]] == [0, 3]  # TAO: ids unique in the file
    assert len({a["track_id"] for a in doc["annotations"]}) == 6 and len(doc["images"]) == 20
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    back = read_coco_video(path)
    assert json.dumps(coco_video_document(back)) == json.dumps(doc)
    for a, b in zip(seqs, back):
        va, vb = a.tracks.visible(), b.tracks.visible()
        assert np.array_equal(va.track_id, vb.track_id) and np.array_equal(va.frame, vb.frame)
        assert np.allclose(va.xyxy, vb.xyxy, atol=1e-9) and (a.info.num_frames, a.info.frame_base) == (
            b.info.num_frames, b.info.frame_base)


def test_fractional_boxes_survive_the_round_trip(tmp_path):
    t = Tracks.from_columns(frame=[0, 1], track_id=[7, 7], xyxy=[[0.1, 0.2, 10.3, 20.7], [1 / 3, 2 / 3, 9.9, 19.1]])
    seq = Sequence("s", t, SequenceInfo(2, 64, 48, 0, (), "s"))
    doc = coco_video_document([seq])
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert coco_video_document(read_coco_video(tmp_path / "a.json")) == doc


def test_coco_rle_from_cvat_mask_tracks():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:5] = True
    rle = coco_rle(mask)
    flat = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).astype(bool)
    assert np.array_equal(flat.reshape(8, 6).T, mask)  # column-major, background first
    t = Tracks.from_columns(frame=[0, 1], track_id=[3, 3], xyxy=[[2, 1, 5, 4]] * 2)
    masks = ({"group": 9, "shapes": [{"type": "mask", "frame": 0, "outside": False, "points": mask_to_rle(mask)},
                                      {"type": "mask", "frame": 1, "outside": True, "points": mask_to_rle(mask)}]},
             {"group": 0, "shapes": [{"type": "mask", "frame": 1, "outside": False, "points": mask_to_rle(mask)}]})
    seq = Sequence("m", t, SequenceInfo(2, 8, 6, 0, (), "m"), extra={"mask_tracks": masks, "groups": {3: 9}})
    doc = coco_video_document([seq], masks=True)
    by = {(a["track_id"], a["image_id"]): a for a in doc["annotations"]}
    assert by[(3, 1)]["segmentation"] == rle and "segmentation" not in by[(3, 2)]
    alone = by[(4, 2)]  # the unpaired mask track became track 4, boxed by its mask
    assert alone["bbox"] == [2.0, 1.0, 3.0, 3.0] and alone["segmentation"] == rle
    assert np.array_equal(rle_to_mask(mask_to_rle(mask), 8, 6), mask)
    with pytest.raises(Exception, match="frame size unknown"):
        coco_video_document([Sequence("m", t, SequenceInfo(2), extra=seq.extra)], masks=True)


def test_missing_seqinfo_exports_with_warnings(tmp_path):
    seqs = load_sequences([write_sequence(tmp_path / "in", seqinfo=False)])
    warnings = write_mot_challenge(tmp_path / "out", {"all": seqs}, benchmark="d")
    assert "no seqinfo.ini" in seqs[0].warnings[0] and any("frame size unknown" in w for w in warnings)
    assert "seqLength=8\n" in (tmp_path / "out" / "d-all" / "TINY-01" / "seqinfo.ini").read_text()
