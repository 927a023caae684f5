"""Optional encryption at rest of journal files (AES-256-GCM, one sealed record per write).

A journal file written with a key is a sequence of records::

    uint32 length (little-endian) of what follows | 12-byte random nonce | ciphertext + 16-byte GCM tag

The associated data of every record is the file name and the record's index, so records cannot be
reordered, dropped from the middle or moved between files without the tag check failing.  A record cut
short by a crash (the last one) is reported as a truncation at its byte offset; everything before it reads.

The key file holds 32 random bytes, raw, as 64 hexadecimal characters, or as base64 (make one with
``reconstream journal keygen FILE``); it must not be readable by group or others.  Only a key id (the first
16 hexadecimal digits of the key's SHA-256) goes into the manifest.  Needs the ``cryptography`` package
(``pip install reconstream[journal-crypto]``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

SCHEME = "AES-256-GCM-records-v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_RECORD_BYTES = 1 << 26


class JournalKeyError(ValueError):
    """The key file is missing, unreadable, too open or not a 256-bit key; or a record fails to decrypt."""


def write_key_file(path: Path) -> Path:
    """Create a new random key file (mode 0600); refuses to overwrite an existing file."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path


def _decode_key(raw: bytes, path: Path) -> bytes:
    if len(raw) == 32:
        return raw
    text = raw.strip()
    for decode in (binascii.unhexlify, base64.b64decode):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise JournalKeyError(f"journal key {path}: not a 256-bit key (32 raw bytes, 64 hex digits or base64)")


class JournalCipher:
    """Seals and opens journal records with one AES-256-GCM key read from ``key_file``."""

    def __init__(self, key_file: Path) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise JournalKeyError(
                "journal encryption needs the 'cryptography' package: pip install reconstream[journal-crypto]"
            ) from exc
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            raw = path.read_bytes()
        except OSError as exc:
            raise JournalKeyError(f"journal key {path}: {exc.strerror or exc}") from None
        if mode & 0o077:
            raise JournalKeyError(f"journal key {path}: readable by group or others (chmod 600 it)")
        key = _decode_key(raw, path)
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    def seal(self, plaintext: bytes | memoryview, file_name: str, index: int) -> bytes:
        """One record (length, nonce, ciphertext and tag) for the ``index``-th write to ``file_name``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, bytes(plaintext), _aad(file_name, index))
        return struct.pack("<I", _NONCE_BYTES + len(sealed)) + nonce + sealed

    def open(self, record: bytes, file_name: str, index: int, offset: int) -> bytes:
        """The plaintext of one record (``record`` without its length prefix)."""
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(record[:_NONCE_BYTES], record[_NONCE_BYTES:], _aad(file_name, index))
        except InvalidTag:
            raise JournalKeyError(
                f"{file_name}: record {index} at byte {offset} does not decrypt (wrong key, or altered)"
            ) from None


def _aad(file_name: str, index: int) -> bytes:
    return file_name.encode("utf-8") + struct.pack("<Q", index)


class DecryptingReader:
    """``read(n)`` over an encrypted journal file: the plaintext, record by record.

    A last record cut short (a crash mid-write) ends the stream there, like a truncated plain file;
    ``truncated_at`` then holds its byte offset.
    """

    def __init__(self, fh: BinaryIO, cipher: JournalCipher, file_name: str) -> None:
        self._fh, self._cipher, self._name = fh, cipher, file_name
        self._buffer = b""
        self._index = 0
        self._offset = 0
        self.truncated_at: int | None = None

    def _next_record(self) -> bool:
        prefix = self._fh.read(4)
        if len(prefix) < 4:
            if prefix:
                self.truncated_at = self._offset
            return False
        (n,) = struct.unpack("<I", prefix)
        if not _NONCE_BYTES + _TAG_BYTES <= n <= _MAX_RECORD_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise JournalKeyError(
                f"{self._name}: record {self._index} at byte {self._offset}: bad length {n}"
            )
        body = self._fh.read(n)
        if len(body) < n:
            self.truncated_at = self._offset
            return False
        self._buffer = self._cipher.open(body, self._name, self._index, self._offset)
        self._index += 1
        self._offset += 4 + n
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buffer]
            self._buffer = b""
            while self._next_record():
                parts.append(self._buffer)
                self._buffer = b""
            return b"".join(parts)
        while not self._buffer:
            if not self._next_record():
                return b""
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out
