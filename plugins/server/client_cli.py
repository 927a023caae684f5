"""``reconstream send FILE --chain NAME [--host --port] --out DIR``: send a raw-data file to a server.

Exit status: 0 done, 1 the server reported an error, 2 bad input, 3 network failure, 4 TLS failure,
5 protocol failure.  TLS fails closed: any TLS option means TLS, and a client certificate without a CA
to verify the server (``--tls-ca``, or ``--tls`` for the system's trust store) is an error.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

from plugins.server.client import ClientError, send_file


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="ISMRMRD raw data (HDF5 .h5 or stream .bin)")
    parser.add_argument(
        "--chain", required=True, help="chain name on the server, or a local .toml file (sent inline)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="server host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9002, help="server port (default 9002)")
    parser.add_argument("--out", required=True, help="folder for the images, reports and server messages")
    parser.add_argument(
        "--tls-ca", default=None, help="PEM CA bundle: connect with TLS and verify the server"
    )
    parser.add_argument(
        "--tls", action="store_true", help="connect with TLS, verifying the server with the system's CAs"
    )
    parser.add_argument("--tls-cert", default=None, help="PEM client certificate (with --tls-key)")
    parser.add_argument("--tls-key", default=None, help="PEM client key")


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context the options ask for; ``None`` only when no TLS option is given."""
    if not (args.tls_ca or args.tls_cert or args.tls_key or args.tls):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("send: --tls-cert and --tls-key go together")
    if not (args.tls_ca or args.tls):
        raise ValueError(
            "send: --tls-cert/--tls-key given without --tls-ca: give the CA that signed the server's "
            "certificate (or --tls for the system's CAs); not sending patient data unencrypted"
        )
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"send: TLS files cannot be used: {getattr(exc, 'strerror', None) or exc}") from None
    return context


def main(args: argparse.Namespace) -> int:
    context = tls_context(args)
    try:
        result = send_file(Path(args.file), args.chain, args.host, args.port, Path(args.out), context)
    except ClientError as exc:
        print(f"reconstream send: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"{result.n_items_sent} items sent; {len(result.images)} images and {len(result.reports)} reports "
        f"written to {args.out}"
    )
    for error in result.errors:
        print(error)
    if result.failure_kind is not None:
        return ClientError.EXIT_CODES[result.failure_kind]
    return 0 if result.closed and not result.errors else 1
