"""Nuclio handler of the CVAT ``reid`` function "botsort" (see cvat_extension.adapters.nuclio.reid)."""

from cvat_extension.adapters.nuclio.io import handle
from cvat_extension.adapters.nuclio.reid import matcher_from_env


def init_context(context):
    """Build the tracker template and state store once per worker."""
    context.user_data.matcher = matcher_from_env("botsort", namespace="botsort")


def handler(context, event):
    """Answer one frame pair: a list, per boxes0 entry, of an index into boxes1 or -1."""
    return handle(context, event, context.user_data.matcher)
