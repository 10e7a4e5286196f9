"""``cvat-track serve-functions``: answer CVAT's Nuclio dashboard calls with our handlers.

Point CVAT at it with ``CVAT_NUCLIO_HOST=<this host>`` and ``CVAT_NUCLIO_PORT=8070`` on both
``cvat_server`` and ``cvat_worker_annotation`` (``CVAT_NUCLIO_INVOKE_METHOD=dashboard``, the
default). Functions come from the manifest's ``functions:`` section; models load on first use.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``serve-functions`` parser."""
    parser = subparsers.add_parser(
        "serve-functions",
        help="serve our Nuclio functions to CVAT without Nuclio (a local dashboard stand-in)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=_port, default=8070, metavar="PORT", help="listen port (default 8070)")
    parser.add_argument("--host", default="0.0.0.0", metavar="HOST", help="listen address (default 0.0.0.0)")
    parser.add_argument("--manifest", default="serverless.yaml", metavar="YAML",
                        help="functions manifest (default serverless.yaml)")
    parser.add_argument("--only", action="extend", nargs="+", default=[], metavar="NAME",
                        help="serve just these functions (--only yolo bytetrack)")
    parser.add_argument(
        "--print-spec",
        metavar="NAME",
        help="load NAME's model and print the label spec JSON for its function.yaml, then exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (exit 0), or print a spec."""
    from cvat_extension.adapters.nuclio.gateway import FunctionGateway, serve
    from cvat_extension.errors import ConfigError

    only = [args.print_spec] if args.print_spec else args.only
    gateway = FunctionGateway.from_manifest(args.manifest, only=only)
    if args.print_spec:
        function = getattr(gateway.runtimes[args.print_spec].user_data(), "function", None)
        if function is None or not hasattr(function, "spec"):
            raise ConfigError(f"{args.print_spec}: this function does not generate a label spec")
        print(json.dumps(function.spec(), indent=2))
        return 0
    print(
        f"serving {', '.join(gateway.runtimes) or 'no functions'} on {args.host}:{args.port} "
        "(set CVAT_NUCLIO_HOST/CVAT_NUCLIO_PORT to this address); Ctrl-C stops"
    )
    try:
        serve(gateway, host=args.host, port=args.port)
    except KeyboardInterrupt:
        return 0
    return 0
