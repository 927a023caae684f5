"""Replaying a journaled session offline: the same bytes, the same chain, outputs into a folder.

``replay_session`` reads ``input.bin`` exactly as the server did (same parser and limits), runs the chain
the session asked for (or another one, e.g. when the original name was unknown) and writes the outputs
with :func:`plugins.runtime.session.run_to_folder`.  A recording truncated by a disconnect is replayed up
to its last complete message.  The replayed images are compared with the images the server sent back
(``output.bin``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np

from plugins.io.mrd2_protocol import AnyProtocolReader, read_replies
from plugins.io.protocol import (
    Close,
    MessageReader,
    MessageSource,
    ProtocolLimits,
    StreamClosed,
    exact_reader,
)
from plugins.runtime.chain import ChainSpec, load_chain
from plugins.runtime.items import StreamInterrupted
from plugins.runtime.session import RunSummary, run_to_folder
from plugins.server.journal import INPUT_FILE, OUTPUT_FILE, open_journal_file, read_manifest
from plugins.server.journal_crypto import JournalCipher
from plugins.server.stream import ChainResolver, data_messages, read_handshake

log = logging.getLogger("reconstream.server.replay")


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of a replay.

    Attributes:
        session_id: the replayed session.
        out_dir: folder with the replayed outputs.
        n_images: images the replay produced.
        n_images_journaled: images the server had sent back in the original session.
        matches_journal: True when the replayed images equal the journaled ones (same count, headers'
            indices and pixels), None when the original session sent no images to compare with.
        truncated: True when the recording ended without CLOSE (client disconnected, server crash).
        summary: the run's summary (``interrupted`` and ``incomplete`` say what a truncation left out).
    """

    session_id: str
    out_dir: Path
    n_images: int
    n_images_journaled: int
    matches_journal: bool | None
    truncated: bool
    summary: RunSummary


def find_session(session: str | Path, journal_dir: Path | None = None) -> Path:
    """A session folder from its path, or from its id inside ``journal_dir``."""
    candidates = [Path(session)]
    if journal_dir is not None:
        candidates.append(Path(journal_dir) / str(session))
    for folder in candidates:
        if (folder / INPUT_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"no journaled session {str(session)!r} (looked in {', '.join(map(str, candidates))})"
    )


class _Truncation:
    def __init__(self) -> None:
        self.truncated = False


def _tolerant(items: Iterator[Any], flag: _Truncation, reader: MessageSource) -> Iterator[Any]:
    try:
        yield from items
    except StreamClosed as exc:
        log.warning("the recording ends mid-stream (%s); replayed up to its last complete message", exc)
        flag.truncated = True
        yield StreamInterrupted(f"the journaled session ends without CLOSE ({exc})", reader.n_messages)


def journaled_images(path: Path, cipher: JournalCipher | None = None) -> list[ismrmrd.Image]:
    """Every IMAGE message in a journal file (e.g. ``output.bin``; decrypted with ``cipher`` if needed),
    of an ISMRMRD v1 or an MRD v2 reply stream."""
    images: list[ismrmrd.Image] = []
    fh, read = open_journal_file(path.parent, path.name, cipher)
    with fh:
        head = read(2)
        replay = _Prefixed(head, read)
        if head == b"ya":
            try:
                images.extend(i for i in read_replies(replay.read) if isinstance(i, ismrmrd.Image))
            except (StreamClosed, ValueError):
                pass
            return images
        reader = MessageReader(exact_reader(replay.read))
        try:
            while True:
                _, obj = reader.next_message()
                if isinstance(obj, ismrmrd.Image):
                    images.append(obj)
                elif isinstance(obj, Close):
                    break
        except StreamClosed:
            pass
    return images


class _Prefixed:
    """``read(n)`` that first returns bytes already read."""

    def __init__(self, head: bytes, read: Any) -> None:
        self.head, self._read = head, read

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head[:n], self.head[n:]
            return out
        return bytes(self._read(n))


def _read_images_h5(out_dir: Path) -> list[ismrmrd.Image]:
    path = out_dir / "images.h5"
    if not path.is_file():
        return []
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        groups = [g for g in dset.list() if g.startswith("image_")]
        return [dset.read_image(g, i) for g in sorted(groups) for i in range(dset.number_of_images(g))]
    finally:
        dset.close()


def _image_key(image: ismrmrd.Image) -> tuple[int, ...]:
    return (
        int(image.image_series_index),
        int(image.slice),
        int(image.set),
        int(image.contrast),
        int(image.phase),
        int(image.repetition),
        int(image.image_index),
    )


def images_equal(a: list[ismrmrd.Image], b: list[ismrmrd.Image]) -> bool:
    """Same number of images and, matched by their indices, identical pixels."""
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=_image_key), sorted(b, key=_image_key), strict=True):
        if _image_key(x) != _image_key(y) or not np.array_equal(np.asarray(x.data), np.asarray(y.data)):
            return False
    return True


def replay_session(
    folder: Path,
    out_dir: Path,
    chain: ChainSpec | str | None = None,
    device: str = "cpu",
    limits: ProtocolLimits | None = None,
    chain_dirs: tuple[Path, ...] = (),
    cipher: JournalCipher | None = None,
) -> ReplayResult:
    """Re-run the journaled session in ``folder``; outputs go to ``out_dir`` (see the module docstring).

    The chain the session asked for is resolved with the server's rules (``chain_dirs``, then the shipped
    chains; an inline chain may not name files on the server), so a replay never writes or reads where a
    network client chose.  ``chain`` (the operator's choice) replaces it.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    override = load_chain(chain) if isinstance(chain, str) else chain
    flag = _Truncation()
    fh, read = open_journal_file(folder, INPUT_FILE, cipher)
    with fh:
        reader = AnyProtocolReader(read, limits)
        # a session that named no chain (an MRD v2 client, or a v1 one relying on the server's default)
        # is replayed with the chain the manifest records it ran
        recorded = manifest.get("chain") if manifest.get("chain_source") != "CONFIG_TEXT chain" else None
        resolver = ChainResolver(tuple(chain_dirs), default_chain=recorded)
        handshake = read_handshake(reader, resolver, lambda _kind: None, override)
        items = _tolerant(_chain_items(handshake.pending, reader), flag, reader)
        summary = run_to_folder(
            handshake.chain,
            items,
            Path(out_dir),
            header=handshake.header,
            device=device,
            inputs=[folder / INPUT_FILE],
        )
    original = journaled_images(folder / OUTPUT_FILE, cipher)
    replayed = _read_images_h5(Path(out_dir))
    matches = images_equal(original, replayed) if original else None
    log.info(
        "replayed session %s: %d images (%d journaled), match %s",
        manifest["session_id"],
        summary.n_images,
        len(original),
        matches,
    )
    return ReplayResult(
        str(manifest["session_id"]),
        Path(out_dir),
        summary.n_images,
        len(original),
        matches,
        flag.truncated,
        summary,
    )


def _chain_items(pending: list[Any], reader: MessageSource) -> Iterator[Any]:
    yield from pending
    yield from data_messages(reader, lambda _kind: None)
