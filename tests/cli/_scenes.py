"""Small synthetic inputs shared by the CLI tests of check/merge/eval."""

from __future__ import annotations

from pathlib import Path

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.io.formats import write_tracks


def scene_with_errors(seed: int = 1, num_frames: int = 300) -> tuple[Tracks, Tracks, SequenceInfo, list]:
    from cvat_extension.synthetic.inject import inject_errors
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    gt, info = make_scene(SceneConfig(seed=seed, num_frames=num_frames, num_objects=12))
    bad, truth = inject_errors(gt, kinds=["split", "ghost", "id_switch"], count_per_kind=2,
                               seed=seed, info=info)
    return gt, bad, info, truth


def write(path: Path, tracks: Tracks, info: SequenceInfo, fmt: str) -> Path:
    write_tracks(path, tracks, fmt=fmt, info=info)
    return path
