"""Nuclio request decoding/encoding shared by the functions in ``functions/``."""
