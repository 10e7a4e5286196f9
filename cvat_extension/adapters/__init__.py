"""Faces of the product over the core: CLI, Nuclio handlers, cvat-sdk function modules."""
