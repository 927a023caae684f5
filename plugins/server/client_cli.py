"""``reconstream send FILE --chain NAME [--host --port] --out DIR``: send a raw-data file to a server."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

from plugins.server.client import send_file


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
    parser.add_argument("--tls-cert", default=None, help="PEM client certificate (with --tls-key)")
    parser.add_argument("--tls-key", default=None, help="PEM client key")


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_ca:
        return None
    context = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_cert:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def main(args: argparse.Namespace) -> int:
    result = send_file(Path(args.file), args.chain, args.host, args.port, Path(args.out), _tls_context(args))
    print(
        f"{result.n_items_sent} items sent; {len(result.images)} images and {len(result.reports)} reports "
        f"written to {args.out}"
    )
    for error in result.errors:
        print(error)
    return 0 if result.closed and not result.errors else 1
