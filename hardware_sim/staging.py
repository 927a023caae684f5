"""Outputs written under temporary names and put in place only when the whole run succeeded.

A simulation that fails (or is interrupted) half way leaves nothing behind: no truncated list-mode, no truth
file without its data, no folder with a Dixon exam and no PET.  Temporary files live beside their targets
(``.NAME.partial``), so the final rename stays on one file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_files(targets: Sequence[Path]) -> Iterator[list[Path]]:
    """Temporary paths for ``targets``; renamed onto them when the block succeeds, removed when it raises."""
    temps = []
    for target in targets:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        temps.append(Path(target).with_name(f".{Path(target).name}.partial"))
    try:
        yield temps
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    for temp, target in zip(temps, targets, strict=True):
        if temp.exists():
            os.replace(temp, target)


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir``; its files move into ``out_dir`` when the block succeeds (replacing
    files of the same name), and it is removed, with everything in it, when the block raises."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(temp.iterdir()):
        os.replace(path, out_dir / path.name)
    temp.rmdir()
