"""cvat-sdk auto-annotation function modules (``cvat-cli task auto-annotate``, agents)."""
