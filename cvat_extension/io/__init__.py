"""Readers and writers of MOT CSV, CVAT for video 1.1 XML and CVAT annotation JSON."""
