"""A simulated scanner in its own process for the server load test (standard library only, so the
process starts fast and never shares the server's interpreter lock).

``run_scanner(host, port, messages)`` sends pre-encoded protocol messages, each at its time offset
(scanner pace), while a thread receives the server's reply stream; returns when the server closes.
"""

from __future__ import annotations

import socket
import threading
import time


def run_scanner(
    host: str, port: int, messages: list[tuple[float, bytes]]
) -> tuple[float, list[tuple[float, bytes]]]:
    """(time the last message was sent, [(arrival time, chunk), ...]); times are ``time.time()``."""
    sock = socket.create_connection((host, port), timeout=300)
    chunks: list[tuple[float, bytes]] = []

    def receive() -> None:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return
            chunks.append((time.time(), data))

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    start = time.monotonic()
    last_sent = time.time()
    for offset_s, payload in messages:
        delay = start + offset_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(payload)
        last_sent = time.time()
    receiver.join()
    sock.close()
    return last_sent, chunks
