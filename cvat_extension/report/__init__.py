"""Self-contained HTML review reports."""
