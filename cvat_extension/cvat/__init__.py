"""The CVAT loop: the only package that imports cvat-sdk."""
