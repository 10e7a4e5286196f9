"""cvat_extension: clean multi-object tracking datasets from CVAT.

The QA core (track model, CVAT keyframe semantics, checks, merge, review plan) needs only
numpy and scipy. Models (``[models]``, ``[sam2]`` extras) and the CVAT adapter
(cvat-sdk) are imported lazily by the parts that need them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.core.tracks import SequenceInfo, Source, Tracks

try:
    __version__ = version("cvat-extension")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["Finding", "ReviewItem", "SequenceInfo", "Source", "Tracks", "__version__"]
