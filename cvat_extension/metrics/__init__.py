"""Tracking metrics (HOTA, IDF1, MOTA, ...) through TrackEval."""
