"""``cvat-track serve-functions``: serve our Nuclio functions to CVAT without Nuclio.

CVAT lists functions on ``CVAT_NUCLIO_HOST:CVAT_NUCLIO_PORT`` (this server's dashboard port)
and invokes them in one of two ways, chosen by ``CVAT_NUCLIO_INVOKE_METHOD`` (set it on both
``cvat_server`` and ``cvat_worker_annotation``):

- ``dashboard``: POSTs to this port; works with every option here;
- ``direct`` (CVAT's default outside Kubernetes): POSTs to ``localhost:<httpPort>`` of each
  function (``host.docker.internal`` from inside Docker); run with ``--direct-ports`` so each
  function gets its own port (dashboard port + 1, + 2, ...). Direct calls carry no header, so
  they cannot carry ``--token``.

Binds 127.0.0.1 unless ``--host`` says otherwise; anything else should set a token
(``$CVAT_FUNCTIONS_TOKEN`` or ``--token-env``), which CVAT sends when its
``CVAT_NUCLIO_FUNCTION_NAMESPACE`` is set to the same value. Models load on first use.
SIGTERM or Ctrl-C stop it gracefully (running calls finish first).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from cvat_extension.adapters.cli._inputs import number_type


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


_seconds = number_type("seconds > 0", lambda v: v > 0)


def register(subparsers: Any) -> None:
    """Add the ``serve-functions`` parser."""
    parser = subparsers.add_parser(
        "serve-functions",
        help="serve our Nuclio functions to CVAT without Nuclio (a local dashboard stand-in)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=_port, default=8070, metavar="PORT",
                        help="dashboard port, CVAT_NUCLIO_PORT (default 8070)")
    parser.add_argument("--host", default="127.0.0.1", metavar="HOST", help="listen address (default 127.0.0.1)")
    parser.add_argument("--direct-ports", action="store_true",
                        help="give each function its own port for CVAT_NUCLIO_INVOKE_METHOD=direct")
    parser.add_argument("--direct-port-base", type=_port, default=None, metavar="PORT",
                        help="first direct port (default: --port + 1)")
    parser.add_argument("--token-env", default="CVAT_FUNCTIONS_TOKEN", metavar="VAR",
                        help="environment variable holding the shared token (unset/empty: no token)")
    parser.add_argument("--max-pending", type=_positive, default=64, metavar="N",
                        help="requests per function waiting at most; more get 503 (default 64)")
    parser.add_argument("--max-body-mb", type=_positive, default=32, metavar="MB",
                        help="largest request body (default 32)")
    parser.add_argument("--idle-timeout", type=_seconds, default=15.0, metavar="SECONDS",
                        help="close idle keep-alive connections after this many seconds (default 15)")
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
    """Serve until SIGTERM/Ctrl-C (exit 0), or print a spec."""
    from cvat_extension.adapters.http_server import HttpLimits
    from cvat_extension.adapters.nuclio.gateway import FunctionGateway
    from cvat_extension.adapters.nuclio.gateway_http import GatewayServer, GatewaySettings
    from cvat_extension.errors import ConfigError

    only = [args.print_spec] if args.print_spec else args.only
    gateway = FunctionGateway.from_manifest(args.manifest, only=only)
    if args.print_spec:
        function = getattr(gateway.runtimes[args.print_spec].user_data(), "function", None)
        if function is None or not hasattr(function, "spec"):
            raise ConfigError(f"{args.print_spec}: this function does not generate a label spec")
        print(json.dumps(function.spec(), indent=2))
        return 0
    settings = GatewaySettings(
        host=args.host,
        port=args.port,
        direct_ports=args.direct_ports,
        direct_port_base=args.direct_port_base,
        token=os.environ.get(args.token_env) or None,
        max_pending=args.max_pending,
        limits=HttpLimits(max_body_bytes=args.max_body_mb * 1024 * 1024, idle_timeout_s=args.idle_timeout),
    )
    server = GatewayServer(gateway, settings)

    async def start() -> int:
        port = await server.start()
        direct = "".join(f", {n} on :{p}" for n, p in server.direct_port.items())
        print(
            f"serving {', '.join(gateway.runtimes) or 'no functions'} on {args.host}:{port}{direct} "
            f"(CVAT_NUCLIO_PORT={port}, CVAT_NUCLIO_INVOKE_METHOD="
            f"{'direct' if args.direct_ports else 'dashboard'}); SIGTERM/Ctrl-C stops",
            flush=True,
        )
        return port

    from cvat_extension.adapters.http_server import run_until_signal

    run_until_signal(start, server.stop)
    return 0
