"""Errors raised by cvat_extension.

Every error the package raises on purpose derives from :class:`CvatTrackError`, so that
the CLI can print one line and exit 2 instead of a traceback::

    CvatTrackError
     ├── InputError                      bad user input (files, requests)
     │    └── AnnotationFormatError      a file that does not parse; carries path/line/frame/track
     ├── ConfigError (also ValueError)   a setting out of range or of unknown name
     ├── AdapterContractError            a model/tracker adapter broke its documented contract
     ├── MissingDependencyError (also ImportError)  an optional extra is not installed
     └── CvatSyncError                   the CVAT loop could not complete a job safely
          └── ConcurrentEditError        someone edited a job after we read it: nothing written

Messages put the location first, then what was expected against what was found.
"""

from __future__ import annotations

from pathlib import Path


class CvatTrackError(Exception):
    """Base class of every error raised on purpose by this package."""


class InputError(CvatTrackError):
    """Input that cannot be used: a malformed file, request or argument."""


class AnnotationFormatError(InputError):
    """An annotation file or document that does not parse.

    The location (path, line or element, frame, track) comes first in the message so that a
    user can jump straight to it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        element: str | None = None,
        frame: int | None = None,
        track_id: int | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.element = element
        self.frame = frame
        self.track_id = track_id
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path if self.line is None else f"{self.path}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.element is not None:
            where.append(self.element)
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.track_id is not None:
            where.append(f"track {self.track_id}")
        return ": ".join([*where, self.reason])


class ConfigError(CvatTrackError, ValueError):
    """A configuration value out of range, of the wrong type, or of unknown name."""


class AdapterContractError(CvatTrackError):
    """A model, tracker or segmenter adapter returned something its protocol forbids."""


class MissingDependencyError(CvatTrackError, ImportError):
    """An optional dependency is missing; the message holds the exact pip command."""


class CvatSyncError(CvatTrackError):
    """The CVAT loop could not finish a job safely; nothing unsafe was written."""


class ConcurrentEditError(CvatSyncError):
    """The job changed on the server since we read it: we abort that job and write nothing."""
