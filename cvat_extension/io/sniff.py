"""What a file really is, when it is not what a command expects.

Every track reader calls these before trusting a document's shape, so that a COCO export, a
label list or an empty file is refused with one line that says what was found ("a COCO file
(images, annotations, categories), not CVAT annotations") instead of being read as zero
tracks and reported clean. Only the shape of the document is looked at: no guessing of
contents, no repair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["EMPTY_HINT", "describe_json", "describe_xml_root", "is_blank"]

#: Appended to "no boxes" errors: how a user says an empty file is intended.
EMPTY_HINT = "pass --allow-empty if an empty annotation is intended"

#: Top-level keys of CVAT's ``LabeledData`` (``GET /api/tasks/{id}/annotations``).
_LABELED_DATA_KEYS = frozenset({"tracks", "shapes", "tags"})

#: (keys that must all be present, what such a document is), first match wins.
_KNOWN_JSON: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"images", "annotations"}), "a COCO file (images, annotations, categories)"),
    (frozenset({"items", "categories"}), "a Datumaro file (items, categories)"),
    (frozenset({"segment_size", "labels"}), "CVAT task settings (task.json of a backup)"),
    (frozenset({"annotations", "data"}), "a Label Studio task"),
    (frozenset({"results", "count"}), "a paginated CVAT API answer"),
)


def is_blank(raw: bytes) -> bool:
    """True when ``raw`` holds nothing but a byte-order mark and whitespace."""
    return not raw.replace(b"\xef\xbb\xbf", b"", 1).strip()


def describe_json(data: Any) -> str | None:
    """None if ``data`` has the shape of CVAT ``LabeledData``, else what it looks like.

    The answer completes "…, not CVAT annotations".

    >>> describe_json({"version": 0, "tags": [], "shapes": [], "tracks": []}) is None
    True
    >>> describe_json({"images": [], "annotations": [], "categories": []})
    'a COCO file (images, annotations, categories)'
    >>> describe_json({"foo": [1, 2, 3]})
    "a JSON object with keys 'foo' (CVAT annotations have 'tracks', 'shapes' or 'tags')"
    """
    if isinstance(data, Mapping):
        keys = {str(k) for k in data}
        if keys & _LABELED_DATA_KEYS:
            return None
        for needed, what in _KNOWN_JSON:
            if needed <= keys:
                return what
        shown = ", ".join(repr(k) for k in sorted(keys)[:5]) + (", …" if len(keys) > 5 else "")
        if not keys:
            return "an empty JSON object"
        return f"a JSON object with keys {shown} (CVAT annotations have 'tracks', 'shapes' or 'tags')"
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        first = data[0] if data else None
        if isinstance(first, Mapping) and {"id", "name"} <= set(first):
            return "a list of labels"
        if isinstance(first, Mapping) and {"annotations", "data"} & set(first):
            return "a Label Studio export (a list of tasks)"
        return "a JSON list (CVAT annotations are an object with 'tracks')"
    return f"a JSON {type(data).__name__} (CVAT annotations are an object with 'tracks')"


def describe_xml_root(tag: str) -> str:
    """What an XML document with root element ``tag`` is, for "…, not CVAT for video XML".

    >>> describe_xml_root("annotation")
    'a Pascal VOC file (<annotation>)'
    """
    known = {
        "annotation": "a Pascal VOC file (<annotation>)",
        "svg": "an SVG image (<svg>)",
        "html": "an HTML page (<html>)",
    }
    return known.get(tag, f"an XML document with root <{tag}>")
