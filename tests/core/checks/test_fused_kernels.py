"""Fused compiled passes (``prepare``, ghost's frozen-box scan) against the numpy code they replaced.

The numpy versions are kept here only as references: every array of ``Prepared`` and the
frozen-row mask must be identical on random scenes, moving camera and outside rows included.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core.checks._common import (
    _MIN_TRACKS_FOR_CAMERA,
    Prepared,
    block_view,
    blocks,
    group_median,
    prepare,
)
from cvat_extension.core.checks.ghost import GhostConfig, _static_rows
from cvat_extension.core.tracks import Tracks
from cvat_extension.synthetic.inject import inject_errors
from cvat_extension.synthetic.scene import SceneConfig, make_scene


def _ref_prepare(tracks: Tracks) -> Prepared:
    """The numpy ``prepare`` the compiled passes replaced (reference only)."""
    visible = ~tracks.outside
    if visible.all():
        vis_rows = np.arange(len(tracks))

        def take(a: np.ndarray) -> np.ndarray:
            return a
    else:
        vis_rows = np.flatnonzero(visible)

        def take(a: np.ndarray) -> np.ndarray:
            return a[vis_rows]
    del visible
    frame = take(tracks.frame)
    tid = take(tracks.track_id)
    box = take(tracks.xyxy)
    n = len(vis_rows)
    new_track = np.ones(n, dtype=bool)
    if n > 1:
        np.not_equal(tid[1:], tid[:-1], out=new_track[1:])
    # int32 row indices (half the memory of int64; tasks stay far below 2**31 boxes).
    idx_t = np.int32 if n < 2**31 - 1 else np.int64
    start_idx = np.flatnonzero(new_track).astype(idx_t)
    lengths = np.diff(np.append(start_idx, n))
    start = np.repeat(start_idx, lengths)
    end = np.repeat(np.append(start_idx[1:], n).astype(idx_t), lengths) if n else start
    prev_ok = np.zeros(n, dtype=bool)
    if n > 1:
        prev_ok[1:] = ~new_track[1:] & (np.diff(frame) == 1)
    del new_track

    h = np.clip(box[:, 3] - box[:, 1], 1e-3, None)
    cx = (box[:, 0] + box[:, 2]) / 2
    cy = (box[:, 1] + box[:, 3]) / 2

    # Camera: per frame f, X_f = s_f X_{f-1} + T_f estimated as medians over tracks.
    f0 = int(frame.min()) if n else 0
    m = int(frame.max()) - f0 + 1 if n else 1
    # Consecutive pairs (i - 1, i) of one track, taken with contiguous slices and one
    # compress each: gathers through index arrays cost several times more on 5 M rows.
    pm = prev_ok[1:]
    key = np.compress(pm, frame[1:]) - f0
    # float32 is enough: group_median sorts in float32 anyway.
    ratio = np.compress(pm, np.diff(np.log(h))).astype(np.float32)
    cnt = np.bincount(key, minlength=m)
    log_s = group_median(key, ratio, cnt)
    del ratio
    ok = cnt >= _MIN_TRACKS_FOR_CAMERA
    s = np.where(ok, np.exp(np.clip(np.nan_to_num(log_s), -0.2, 0.2)), 1.0)
    sk = np.take(s, key)
    dx = (np.compress(pm, cx[1:]) - sk * np.compress(pm, cx[:-1])).astype(np.float32)
    dy = (np.compress(pm, cy[1:]) - sk * np.compress(pm, cy[:-1])).astype(np.float32)
    del sk
    tx = np.where(ok, np.nan_to_num(group_median(key, dx, cnt)), 0.0)
    ty = np.where(ok, np.nan_to_num(group_median(key, dy, cnt)), 0.0)
    # Keep the shift only where it stands out of the tracks' spread (its standard error):
    # on a static camera the median of a few walkers is noise that would only add jitter.
    dx -= np.take(tx, key).astype(np.float32)
    dy -= np.take(ty, key).astype(np.float32)
    dev = np.hypot(dx, dy)
    del dx, dy
    spread = np.bincount(key, weights=dev, minlength=m) / np.maximum(cnt, 1)
    del dev, key, pm
    stderr = 1.5 * spread / np.sqrt(np.maximum(cnt, 1))
    moving = np.hypot(tx, ty) > 2.0 * stderr
    shift = np.stack([np.where(moving, tx, 0.0), np.where(moving, ty, 0.0)], axis=1)
    s = np.where(moving | (np.abs(np.log(s)) > 0.01), s, 1.0)
    # Cumulative transform from frame0: A_f = prod s, B_f = A_f * sum_j T_j / A_j.
    A = np.cumprod(s)
    B = A[:, None] * np.cumsum(shift / A[:, None], axis=0)
    if n and (s != 1.0).any():
        fi = frame - f0
        a = np.take(A, fi)
        cx -= np.take(B[:, 0], fi)
        cx /= a
        cy -= np.take(B[:, 1], fi)
        cy /= a
        log_a = np.log(a)
        del a, fi
    elif n:
        if B.any():
            fi = frame - f0
            cx -= np.take(B[:, 0], fi)
            cy -= np.take(B[:, 1], fi)
            del fi
        log_a = None
    else:
        log_a = None
    area = np.clip(box[:, 2] - box[:, 0], 1e-3, None)
    area *= h
    del h
    log_area = np.log(area).astype(np.float32)
    size = np.sqrt(area).astype(np.float32)
    del area
    if log_a is not None:
        size /= np.exp(log_a).astype(np.float32)
        log_area -= (2 * log_a).astype(np.float32)
    return Prepared(
        rows=vis_rows, frame=frame, tid=tid, xyxy=box, label=take(tracks.label),
        occluded=take(tracks.occluded), visibility=take(tracks.visibility),
        start=start, end=end, prev_ok=prev_ok, cx=cx, cy=cy, size=size,
        log_area=log_area, frame0=f0, cam_scale=s, cam_shift=shift,
    )



def _ref_static_rows(p: Prepared, config: GhostConfig) -> np.ndarray:
    n = len(p.frame)
    L = config.min_static_frames
    b = p.xyxy
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    area = np.log(np.clip((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6, None))
    m = max(n - L, 0)
    ok = (np.arange(m) + L < p.end[:m]) & (p.frame[L:] - p.frame[:m] == L)
    r = np.maximum(config.static_drift_ratio * np.exp(area[:m] / 2), config.static_drift_px)
    still = ok
    h2 = L // 2
    for da, dc in ((0, h2), (h2, L), (0, L)):
        a_, c_ = slice(da, da + m), slice(dc, dc + m)
        still &= (np.hypot(cx[c_] - cx[a_], cy[c_] - cy[a_]) <= r) & (np.abs(area[c_] - area[a_]) <= 0.05)
    s0 = np.flatnonzero(still)
    mark = np.bincount(s0, minlength=n + L + 2) - np.bincount(s0 + L + 1, minlength=n + L + 2)
    return np.cumsum(mark[:n]) > 0


def _scene(seed: int, camera: bool, outside: bool) -> Tracks:
    gt, info = make_scene(SceneConfig(num_frames=400, num_objects=12, seed=seed,
                                      camera_pan_px=40.0 if camera else 0.0,
                                      camera_zoom=0.1 if camera else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                         count_per_kind=2, seed=seed, info=info)
    if outside:
        rng = np.random.default_rng(seed)
        t = t.with_columns(outside=t.outside | (rng.random(len(t)) < 0.05))
    return t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("camera", [False, True])
@pytest.mark.parametrize("outside", [False, True])
def test_prepare_identical_to_numpy(seed: int, camera: bool, outside: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import cvat_extension.core.checks._common as common

    t = _scene(seed, camera, outside)
    ref = _ref_prepare(t)
    with ThreadPoolExecutor(2) as pool, pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "_MIN_SPLIT_ROWS", 10)  # split the last pass on this small scene
        split = prepare(t, pool)
    for new in (prepare(t), split):
        for name in Prepared.__dataclass_fields__:
            a, b = getattr(new, name), getattr(ref, name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype or name in ("start", "end"), name
                np.testing.assert_array_equal(a, b, err_msg=name)
            else:
                assert a == b, name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("window", [2, 7, 30])
def test_static_rows_identical_to_numpy(seed: int, window: int) -> None:
    t = _scene(seed, seed == 1, seed == 2)
    p = prepare(t)
    cfg = GhostConfig(min_static_frames=window, static_drift_px=3.0)
    ref = np.concatenate([_ref_static_rows(block_view(p, r0, r1), cfg) for r0, r1 in blocks(p)])
    got = _static_rows(p, cfg)
    assert ref.any()
    np.testing.assert_array_equal(got, ref)


def test_prepare_empty_and_single_row() -> None:
    t = _scene(0, False, False)
    for sub in (t[np.zeros(len(t), bool)], t[np.arange(len(t)) == 0]):
        new, ref = prepare(sub), _ref_prepare(sub)
        for name in ("start", "end", "prev_ok", "cx", "cy", "size", "log_area"):
            np.testing.assert_array_equal(getattr(new, name), getattr(ref, name), err_msg=name)


def _ref_offset_screen(p: Prepared, min_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(p.frame)
    nxt_ok = np.zeros(n, dtype=bool)
    nxt_ok[:-1] = p.prev_ok[1:]
    cand = np.flatnonzero(p.prev_ok & nxt_ok)
    mx = (p.cx[cand - 1] + p.cx[cand + 1]) * 0.5 - p.cx[cand]
    my = (p.cy[cand - 1] + p.cy[cand + 1]) * 0.5 - p.cy[cand]
    d = np.sqrt(mx * mx + my * my) / p.size[cand]
    big = d > min_ratio
    return cand[big], d[big]


def _ref_switch_screen(b: Prepared, outl: np.ndarray, thr: float) -> np.ndarray:
    n = len(b.frame)
    ok2 = np.zeros(n, dtype=bool)
    ok2[2:] = b.prev_ok[2:] & b.prev_ok[1:-1]
    ddx = b.cx[2:] - 2 * b.cx[1:-1] + b.cx[:-2]
    ddy = b.cy[2:] - 2 * b.cy[1:-1] + b.cy[:-2]
    hot = np.zeros(n, dtype=bool)
    hot[2:] = ok2[2:] & (np.sqrt(ddx * ddx + ddy * ddy) >= thr * b.size[2:])
    hot |= np.arange(n) - b.start < 2
    same = b.tid[:-1] == b.tid[1:]
    hot[:-1] |= hot[1:] & same
    hot[1:] |= hot[:-1] & same
    for d in (-2, -1, 1, 2):
        j = np.clip(outl + d, 0, n - 1)
        hot[j[b.tid[j] == b.tid[outl]]] = True
    hot[b.end[b.start < b.end] - 1] = True
    return hot


def _ref_quiet_near(p: Prepared, rows: np.ndarray, min_visibility: float) -> np.ndarray:
    out = np.zeros(len(rows), dtype=bool)
    for d in (-2, -1, 0, 1):
        j = rows + d
        inside = (j >= p.start[rows]) & (j < p.end[rows])
        jj = np.where(inside, j, rows)
        out |= inside & (p.occluded[jj] | (p.visibility[jj] < min_visibility))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_id_switch_screens_identical_to_numpy(seed: int) -> None:
    from cvat_extension.core._kernels import offset_screen, quiet_near, switch_screen
    from cvat_extension.core.checks.box_jump import BoxJumpConfig, single_outliers

    t = _scene(seed, seed == 1, seed == 2)
    rng = np.random.default_rng(seed)
    t = t.with_columns(occluded=rng.random(len(t)) < 0.02,
                       visibility=rng.random(len(t)).astype(np.float32))
    p = prepare(t)
    for ratio in (0.1, 0.6):
        c, d = offset_screen(p.prev_ok, p.cx, p.cy, p.size, ratio)
        rc, rd = _ref_offset_screen(p, ratio)
        np.testing.assert_array_equal(c, rc)
        np.testing.assert_array_equal(d, rd)
    outl, _, _ = single_outliers(p, BoxJumpConfig(min_offset_ratio=0.1))
    assert len(outl)
    for thr in (0.01, 0.03, 0.3):
        hot = switch_screen(p.prev_ok, p.cx, p.cy, p.size, p.start, p.end, p.tid, outl, np.float32(thr))
        np.testing.assert_array_equal(hot, _ref_switch_screen(p, outl, thr))
    rows = np.flatnonzero(rng.random(len(p.frame)) < 0.3)
    for mv in (0.3, 0.5, 0.7):
        got = quiet_near(p.start, p.end, p.occluded, p.visibility, rows, np.float32(mv))
        np.testing.assert_array_equal(got, _ref_quiet_near(p, rows, mv))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_id_switch_compact_fits_same_findings(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping fits no test can use must not change a single finding."""
    import functools

    from cvat_extension.core.checks import id_switch as mod

    gt, info = make_scene(SceneConfig(num_frames=600, num_objects=20, seed=seed,
                                      camera_pan_px=30.0 if seed == 1 else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch"], count_per_kind=6, seed=seed, info=info)
    for cfg in (mod.IdSwitchConfig(), mod.IdSwitchConfig(min_jump_ratio=0.2, occluded_jump_ratio=0.15,
                                                         swap_candidate_break=0.05, min_jump_px=1.0)):
        got = mod.check_id_switch(t, cfg, info=info)
        with monkeypatch.context() as mp:
            mp.setattr(mod, "_screened_fits", functools.partial(mod._screened_fits, compact=False))
            ref = mod.check_id_switch(t, cfg, info=info)
        assert got, "scene must produce id_switch findings"
        assert got == ref


def test_swap_pairs_identical_to_numpy() -> None:
    from cvat_extension.core._kernels import swap_pairs

    rng = np.random.default_rng(3)
    m = 5000
    pos = rng.random((m, 2)) * 200
    size = (rng.random(m) * 20 + 1)
    order = rng.permutation(m)
    fr = np.sort(rng.integers(0, 800, m))
    tid = rng.integers(0, 30, m)
    pa_l, pb_l = [], []
    for d in range(1, 16):
        a, b = order[:-d], order[d:]
        ok = (np.abs(fr[d:] - fr[:-d]) <= 1) & (tid[d:] != tid[:-d])
        ok &= np.hypot(*(pos[a] - pos[b]).T) < 3.0 * np.maximum(size[a], size[b])
        pa_l.append(a[ok])
        pb_l.append(b[ok])
    A, B = swap_pairs(order, fr, tid, pos, size, 15)
    assert len(A) > 1024  # the buffers grew
    np.testing.assert_array_equal(A, np.concatenate(pa_l))
    np.testing.assert_array_equal(B, np.concatenate(pb_l))


@pytest.mark.parametrize("parts", [2, 3])
def test_match_split_by_frames_same_as_whole(parts: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cvat_extension.core.checks._common import match_detections, start_match, visible_boxes
    from cvat_extension.synthetic.inject import make_detections

    gt, info = make_scene(SceneConfig(num_frames=300, num_objects=15, seed=parts))
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=parts, info=info)
    t = gt.with_columns(outside=gt.outside | (np.arange(len(gt)) % 17 == 0))
    whole = match_detections(prepare(t), det, 0.3)
    frame, xyxy = visible_boxes(t)
    with ThreadPoolExecutor(2) as pool:
        split = start_match(frame, xyxy, det, 0.3, pool, parts)()
    assert (whole.support > 0).any() and (whole.coverage > 0).any()
    np.testing.assert_array_equal(split.support, whole.support)
    np.testing.assert_array_equal(split.coverage, whole.coverage)


def test_run_checks_threaded_same_as_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads (match beside prepare, checks side by side) change no finding."""
    from cvat_extension.core import checks
    from cvat_extension.synthetic.inject import make_detections

    gt, info = make_scene(SceneConfig(num_frames=500, num_objects=15, seed=4))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                         count_per_kind=3, seed=4, info=info)
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=4, info=info)
    serial = checks.run_checks(t, detections=det, info=info, workers=1)
    monkeypatch.setattr(checks, "_MIN_ROWS_FOR_THREADS", 0)
    threaded = checks.run_checks(t, detections=det, info=info, workers=2)
    assert {f.kind for f in serial} >= {"ghost", "id_switch"}
    assert threaded == serial


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_track_summary_identical_to_numpy(seed: int) -> None:
    from cvat_extension.core._kernels import track_summary

    gt, info = make_scene(SceneConfig(num_frames=300, num_objects=15, seed=seed))
    rng = np.random.default_rng(seed)
    t = gt.with_columns(outside=gt.outside | (rng.random(len(gt)) < 0.1))
    p = prepare(t)
    n = len(p.frame)
    first = np.flatnonzero(np.arange(n) == p.start)
    gap = np.zeros(n, dtype=bool)
    gap[1:] = (p.tid[1:] == p.tid[:-1]) & (np.diff(p.frame) > 1)
    segs = np.add.reduceat(gap.astype(np.int64), first) + 1
    m = 10.0
    b = p.xyxy
    at = (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= info.width - m) | (b[:, 3] >= info.height - m)
    border = np.add.reduceat(at.astype(np.int64), first) > 0
    f2, s2, b2 = track_summary(p.start, p.end, p.frame, p.xyxy, m, info.width - m, info.height - m, True)
    assert (segs > 1).any() and border.any() and not border.all()
    np.testing.assert_array_equal(f2, first)
    np.testing.assert_array_equal(s2, segs)
    np.testing.assert_array_equal(b2, border)
    _, _, b3 = track_summary(p.start, p.end, p.frame, p.xyxy, m, 0.0, 0.0, False)
    assert not b3.any()



def _ref_near(mask: np.ndarray, p: Prepared, before: int, after: int) -> np.ndarray:
    """``mask`` spread to rows within ``before``/``after`` rows of the same track (reference).

    Row i is marked when a masked row lies up to ``after`` rows after it or up to
    ``before`` rows before it.
    """
    out = mask.copy()
    m = np.flatnonzero(mask)
    if len(m) == 0:
        return out
    for d in range(1, after + 1):
        j = m - d
        out[j[j >= p.start[m]]] = True
    for d in range(1, before + 1):
        j = m + d
        out[j[j < p.end[m]]] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_size_flags_identical_to_numpy(seed: int) -> None:
    from cvat_extension.core._kernels import size_flags
    from cvat_extension.core.checks._common import quiet_rows

    t = _scene(seed, seed == 1, seed == 2)
    rng = np.random.default_rng(seed)
    t = t.with_columns(occluded=rng.random(len(t)) < 0.05, visibility=rng.random(len(t)).astype(np.float32),
                       xyxy=t.xyxy * rng.uniform(0.9, 1.1, (len(t), 1)))
    p = prepare(t)
    n = len(p.frame)
    width, height, m, mv = 1920, 1080, 30.0, 0.3
    for thr in (0.02, 0.1):
        d = np.zeros(n)
        d[1:] = np.abs(p.log_area[1:] - p.log_area[:-1])
        skip = _ref_near(quiet_rows(p, mv), p, 1, 0)
        b = p.xyxy
        at = (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= width - m) | (b[:, 3] >= height - m)
        prev = np.zeros(n, dtype=bool)
        prev[1:] = at[:-1]
        skip |= at & prev
        ref = np.flatnonzero(p.prev_ok & (d > thr) & ~skip)
        idx, dv = size_flags(p.prev_ok, p.start, p.log_area, p.occluded, p.visibility, np.float32(mv),
                             p.xyxy, m, width - m, height - m, True, thr)
        assert len(ref) > 10 and at.any()
        np.testing.assert_array_equal(idx, ref)
        np.testing.assert_array_equal(dv, d[ref])
