"""The ``cvat-track`` command line. Each subcommand lives in its own ``cmd_<name>.py``."""
