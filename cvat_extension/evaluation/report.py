"""The per-sequence table of the real-error evaluation, with TUNE and HOLDOUT totals.

Totals pool counts (events hit / events, true / confident findings, covered / randomly
covered events, merges), average AP and reviewer gains over rows, and divide clean-GT
findings by the frames of the block's sequences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HEADER", "format_table", "totals"]

HEADER = ("sequence        trk  frames  IDF1  MOTA | events jmp/sw/frg/fpr/sft/mis | jump R.5 Rany | "
          "Pconf   AP | cov/rand item frame | IDF1+ queue/rand/oracle @5% | sync merges n P wrong R | "
          "clean/100f det nodet")


def _ratio(x: float | None) -> str:
    return "    -" if x is None else f"{x:5.2f}"


def _pct(x: float | None) -> str:
    return "   -" if x is None else f"{100 * x:4.0f}"


def _frac(pair: Sequence[int]) -> float | None:
    return pair[0] / pair[1] if pair[1] else None


def _row_line(r: dict[str, Any], seq: dict[str, Any] | None) -> str:
    ev = r["events"]
    sc = r["scoring"]
    cov = r["coverage"]
    rv = r["reviewer"]
    mg = r["merges"]["applied_by_sync"]
    events = "/".join(str(ev[k]) for k in ("id_jump", "gt_switch", "fragment", "fp_run",
                                              "short_false_track", "missed_run"))
    trk = "bt" if r["tracker"] == "bytetrack" else "bs"
    clean_s = "" if seq is None else (f"{seq['clean_gt']['per_100_frames']:5.2f} "
                                      f"{seq['clean_gt_no_detections']['per_100_frames']:5.2f}")
    return (f"{r['sequence']:15} {trk:3} {r['frames']:6d} {100 * r['idf1']:5.1f} {100 * r['mota']:5.1f} | "
            f"{events:>29} | {_pct(_frac(sc['recall_confident']['id_jump']))}% "
            f"{_pct(_frac(sc['recall_any']['id_jump']))}% | {_pct(sc['precision_confident'])}% "
            f"{_pct(sc['ap'])}% | {_ratio(cov['ratio_vs_random'])}x {_ratio(cov['frames_ratio_vs_random'])}x | "
            f"{rv['queue']:+6.2f} {rv['random']:+6.2f} {rv['oracle']:+6.2f}          | "
            f"{mg['merges']:4d} {_pct(mg['precision'])}% {mg['wrong_person']:3d} {_pct(mg['recall'])}% | {clean_s}")


def totals(sequences: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled measures over the rows (and clean-GT results) of ``sequences``."""
    rows = [r for s in sequences for r in s["rows"]]
    out: dict[str, Any] = {"rows": len(rows), "sequences": len(sequences)}

    def pool(get: Any) -> list[int]:
        a = b = 0
        for r in rows:
            x, y = get(r)
            a, b = a + x, b + y
        return [a, b]

    out["id_jump_recall_confident"] = pool(lambda r: r["scoring"]["recall_confident"]["id_jump"])
    out["id_jump_recall_any"] = pool(lambda r: r["scoring"]["recall_any"]["id_jump"])
    kinds = rows[0]["events"].keys() if rows else []
    out["events"] = {k: sum(r["events"][k] for r in rows) for k in kinds}
    out["recall_confident"] = {k: pool(lambda r, k=k: r["scoring"]["recall_confident"][k]) for k in kinds}
    out["recall_any"] = {k: pool(lambda r, k=k: r["scoring"]["recall_any"][k]) for k in kinds}
    out["precision_confident"] = pool(lambda r: (r["scoring"]["confident_true"], r["scoring"]["confident_findings"]))
    chance = [r["chance"] for r in rows if r.get("chance", {}).get("precision_confident") is not None]
    weights = [r["scoring"]["confident_findings"] for r in rows
               if r.get("chance", {}).get("precision_confident") is not None]
    out["chance_precision_confident"] = (sum(c["precision_confident"] * w for c, w in zip(chance, weights))
                                         / sum(weights)) if sum(weights) else None
    jr = [(r["chance"]["id_jump_recall_confident"], r["events"]["id_jump"]) for r in rows
          if r.get("chance", {}).get("id_jump_recall_confident") is not None]
    out["chance_id_jump_recall_confident"] = (sum(a * b for a, b in jr) / sum(b for _a, b in jr)
                                              if jr and sum(b for _a, b in jr) else None)
    out["ap_mean"] = sum(r["scoring"]["ap"] for r in rows) / len(rows) if rows else None
    cov = sum(r["coverage"]["covered"] for r in rows)
    rnd = sum(r["coverage"]["covered_random"] for r in rows)
    covf = sum(r["coverage"]["covered_frames_only"] for r in rows)
    out["coverage"] = {"covered": cov, "covered_frames_only": covf, "covered_random": rnd,
                       "events": sum(r["coverage"]["events"] for r in rows),
                       "ratio_vs_random": cov / rnd if rnd else None,
                       "frames_ratio_vs_random": covf / rnd if rnd else None}
    out["reviewer_mean_points"] = {k: (sum(r["reviewer"][k] for r in rows) / len(rows) if rows else None)
                                   for k in ("queue", "queue_item_tracks", "random", "oracle")}
    for key in ("candidates", "proposed", "applied_by_sync"):
        ms = [r["merges"][key] for r in rows]
        n = sum(m["merges"] for m in ms)
        out[f"merges_{key}"] = {
            "merges": n, "correct": sum(m["correct"] for m in ms),
            "wrong_person": sum(m["wrong_person"] for m in ms),
            "precision": sum(m["correct"] for m in ms) / n if n else None,
            "fragments": sum(m["fragments"] for m in ms),
            "recall": (sum(m["fragments_linked"] for m in ms) / sum(m["fragments"] for m in ms))
            if sum(m["fragments"] for m in ms) else None,
        }
    checks: dict[str, dict[str, Any]] = {}
    for r in rows:
        for kind, c in r["scoring"]["by_check"].items():
            d = checks.setdefault(kind, {"findings": 0, "confident": 0, "confident_true": 0,
                                         "recall_confident": {k: [0, 0] for k in kinds}})
            d["findings"] += c["findings"]
            d["confident"] += c["confident"]
            d["confident_true"] += c["confident_true"]
            for k in kinds:
                hit, of = c["recall_confident"][k]
                d["recall_confident"][k][0] += hit
    for d in checks.values():
        for k in kinds:
            d["recall_confident"][k][1] = out["events"][k]
        d["precision_confident"] = d["confident_true"] / d["confident"] if d["confident"] else None
    out["by_check"] = dict(sorted(checks.items()))
    frames = sum(s["frames"] for s in sequences)
    for key in ("clean_gt", "clean_gt_no_detections"):
        conf = sum(s[key]["confident"] for s in sequences)
        by_kind: dict[str, int] = {}
        for s in sequences:
            for k, v in s[key]["by_kind"].items():
                by_kind[k] = by_kind.get(k, 0) + v
        out[key] = {"frames": frames, "confident": conf,
                    "per_100_frames": 100 * conf / frames if frames else None, "by_kind": by_kind}
    return out


def _total_line(name: str, t: dict[str, Any]) -> str:
    cov = t["coverage"]
    rv = t["reviewer_mean_points"]
    mg = t["merges_applied_by_sync"]
    ev = "/".join(str(v) for v in t["events"].values())
    clean = t["clean_gt"]["per_100_frames"] or 0.0
    clean_nd = t["clean_gt_no_detections"]["per_100_frames"] or 0.0
    return (f"{name:15} {'':3} {t['clean_gt']['frames']:6d} {'':5} {'':5} | {ev:>29} | "
            f"{_pct(_frac(t['id_jump_recall_confident']))}% {_pct(_frac(t['id_jump_recall_any']))}% | "
            f"{_pct(_frac(t['precision_confident']))}% {_pct(t['ap_mean'])}% | "
            f"{_ratio(cov['ratio_vs_random'])}x {_ratio(cov['frames_ratio_vs_random'])}x | "
            f"{rv['queue'] or 0:+6.2f} {rv['random'] or 0:+6.2f} {rv['oracle'] or 0:+6.2f}          | "
            f"{mg['merges']:4d} {_pct(mg['precision'])}% {mg['wrong_person']:3d} {_pct(mg['recall'])}% | "
            f"{clean:5.2f} {clean_nd:5.2f}")


def format_table(blocks: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """The table: one block per split with its rows and a total line."""
    lines = [HEADER, "-" * len(HEADER)]
    for name, seqs in blocks.items():
        if not seqs:
            continue
        lines.append(f"[{name}]")
        for s in seqs:
            for k, r in enumerate(s["rows"]):
                lines.append(_row_line(r, s if k == 0 else None))
            if not s["rows"]:
                lines.append(f"{s['sequence']:15} (no tracker rows) clean/100f "
                             f"{s['clean_gt']['per_100_frames']:5.2f} {s['clean_gt_no_detections']['per_100_frames']:5.2f}")
        t = totals(seqs)
        lines.append(_total_line(f"TOTAL {name}", t))
        lines.append(f"  chance level (confident findings moved to random frames of their tracks): precision "
                     f"{_pct(t['chance_precision_confident'])}%, identity-jump recall "
                     f"{_pct(t['chance_id_jump_recall_confident'])}%")
        lines.append(f"  by check ({name}): findings, confident, precision of confident, recall at >= 0.5 of "
                     "jmp/sw/frg/fpr/sft/mis")
        for kind, d in t["by_check"].items():
            rec = " ".join(_pct(_frac(v)) for v in d["recall_confident"].values())
            lines.append(f"    {kind:16} {d['findings']:6d} {d['confident']:6d} {_pct(d['precision_confident'])}% | {rec}")
        for key, what in (("clean_gt", "with detections"), ("clean_gt_no_detections", "without detections")):
            c = t[key]
            kinds_s = ", ".join(f"{k} {v}" for k, v in sorted(c["by_kind"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  clean GT {what}: {c['confident']} confident findings in {c['frames']} frames "
                         f"({kinds_s or 'none'})")
        lines.append("")
    return "\n".join(lines)
