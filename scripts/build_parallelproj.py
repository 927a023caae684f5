#!/usr/bin/env python3
"""Build parallelproj's C/OpenMP (and, with ``--cuda``, CUDA) projector library from its source, outside the repository.

The side-by-side benchmark ``benchmarks/test_bench_parallelproj.py`` loads the library this script installs
(parallelproj 1.10 has no PyPI wheel with the C library).  Nothing is downloaded here: give a git directory
(a clone or a bare mirror of https://github.com/gschramm/parallelproj) or an unpacked source tree.

    .venv/bin/python scripts/build_parallelproj.py --git-dir /path/to/parallelproj/.git [--ref v1.10.2] [--cuda]
    .venv/bin/python scripts/build_parallelproj.py --source-dir /path/to/parallelproj-1.10.2

The library goes to ``--prefix`` (default ``$XDG_CACHE_HOME/reconstream/parallelproj-<ref>``, i.e.
``~/.cache/reconstream/parallelproj-v1.10.2``), which is where the benchmark looks unless the environment
variable ``RECONSTREAM_PARALLELPROJ_LIB`` names the ``libparallelproj_c.so`` to use
(``RECONSTREAM_PARALLELPROJ_CUDA_LIB`` for ``libparallelproj_cuda.so``).  Needs cmake, a C compiler with
OpenMP, and nvcc for ``--cuda``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_REF = "v1.10.2"
ROOT = Path(__file__).resolve().parent.parent


def default_prefix(ref: str = DEFAULT_REF) -> Path:
    """Install folder of a build of ``ref``: under the user cache, never inside the repository."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "reconstream" / f"parallelproj-{ref}"


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def _export(git_dir: Path, ref: str, dest: Path) -> Path:
    """``git archive`` of ``ref`` unpacked into ``dest``/src."""
    src = dest / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", ref],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return src


def build(source: Path, prefix: Path, cuda: bool, jobs: int) -> list[Path]:
    """Configure, build and install; returns the installed shared libraries."""
    with tempfile.TemporaryDirectory(prefix="parallelproj-build-") as tmp:
        build_dir = Path(tmp) / "build"
        _run(
            [
                "cmake",
                "-S",
                str(source),
                "-B",
                str(build_dir),
                "-DCMAKE_BUILD_TYPE=Release",
                f"-DCMAKE_INSTALL_PREFIX={prefix}",
                "-DSKIP_DOCS=TRUE",
                "-DBUILD_TESTING=OFF",
                f"-DSKIP_CUDA_LIB={'FALSE' if cuda else 'TRUE'}",
            ]
        )
        _run(["cmake", "--build", str(build_dir), "--parallel", str(jobs)])
        _run(["cmake", "--install", str(build_dir)])
    return sorted(prefix.rglob("libparallelproj_*.so"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--git-dir", type=Path, help="git directory of a parallelproj clone or mirror")
    where.add_argument("--source-dir", type=Path, help="an unpacked parallelproj source tree")
    parser.add_argument(
        "--ref", default=DEFAULT_REF, help=f"tag or commit with --git-dir (default {DEFAULT_REF})"
    )
    parser.add_argument("--prefix", type=Path, help="install folder (default: the user cache, see above)")
    parser.add_argument("--cuda", action="store_true", help="also build the CUDA library (needs nvcc)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = parser.parse_args()
    prefix = (args.prefix or default_prefix(args.ref)).resolve()
    if prefix == ROOT or ROOT in prefix.parents:
        print(
            f"error: --prefix {prefix} is inside the repository; pick a scratch folder outside it",
            file=sys.stderr,
        )
        return 2
    if shutil.which("cmake") is None:
        print("error: cmake not found on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="parallelproj-src-") as tmp:
        if args.git_dir is not None:
            if not args.git_dir.exists():
                print(f"error: --git-dir {args.git_dir} does not exist", file=sys.stderr)
                return 2
            source = _export(args.git_dir, args.ref, Path(tmp))
        else:
            source = args.source_dir
            if not (source / "CMakeLists.txt").is_file():
                print(f"error: --source-dir {source} has no CMakeLists.txt", file=sys.stderr)
                return 2
        libraries = build(source, prefix, args.cuda, args.jobs)
    if not libraries:
        print(f"error: the build installed no libparallelproj_*.so under {prefix}", file=sys.stderr)
        return 1
    for lib in libraries:
        print(lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
