"""The output folder's manifest: which model, which input, which settings.

It is written before any shard and again, with the counts, when all are done
(then the `_SUCCESS` marker, last). A rerun into the same folder resumes only
if model, input and settings are the same; anything else would mix outputs.
The model is identified by its meta and a hash of its files (spaCy's default
meta gives every trained pipeline the same name and version), so retraining
into the same folder counts as a different model.
"""
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from spacy import util

from .atomic import replace

MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"


class ManifestMismatch(ValueError):
    pass


def model_identity(model: str, wheel: Optional[Path] = None) -> Dict[str, str]:
    """name, version and sha256 of a pipeline: a folder, an installed package,
    or the package wheel that will be installed on the workers."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            metas = sorted((n for n in archive.namelist() if n.endswith("/meta.json")), key=len)
            if not metas:
                raise ValueError(f"{wheel} holds no spaCy pipeline (no meta.json): build it with `spacy package`.")
            meta = json.loads(archive.read(metas[0]))
        identity = _identity(meta, _sha256([wheel]))
        if identity["name"] != model:
            raise ValueError(f"{wheel} holds the package {identity['name']}, not '{model}': give its name as MODEL.")
        return identity
    path = Path(model)
    if not path.is_dir():
        if not util.is_package(model):
            raise ValueError(
                f"Model '{model}' is neither a pipeline folder nor an installed package "
                "(for Ray workers that install it from a wheel, pass the wheel too)."
            )
        package = util.get_package_path(model)
        meta = util.get_model_meta(package)
        path = package / f"{meta['lang']}_{meta['name']}-{meta['version']}"
    meta = util.get_model_meta(path)
    return _identity(meta, _sha256(sorted(p for p in path.rglob("*") if p.is_file()), root=path))


def _identity(meta: dict, sha256: str) -> Dict[str, str]:
    return {"name": f"{meta['lang']}_{meta['name']}", "version": meta["version"], "sha256": sha256}


def _sha256(files: List[Path], root: Optional[Path] = None) -> str:
    digest = hashlib.sha256()
    for path in files:
        if root is not None:
            digest.update(str(path.relative_to(root)).encode("utf8") + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_or_write(output_dir: Path, manifest: dict) -> None:
    """Refuse an output folder that holds another model's, input's or settings'
    outputs; otherwise (re)write the manifest of this run."""
    path = output_dir / MANIFEST
    if path.exists():
        old = json.loads(path.read_text(encoding="utf8"))
        for key in ("model", "settings", "input"):
            if old.get(key) != manifest[key]:
                raise ManifestMismatch(
                    f"{output_dir} holds the outputs of a different {key} "
                    f"({_difference(old.get(key), manifest[key])}). Annotate into a new "
                    "output folder, or delete this one to start again."
                )
    elif output_dir.exists() and any(output_dir.iterdir()):
        raise ManifestMismatch(f"{output_dir} is not empty and has no {MANIFEST}: choose an empty or new folder.")
    output_dir.mkdir(parents=True, exist_ok=True)
    write(output_dir, manifest)


def _difference(old, new) -> str:
    if isinstance(old, dict) and isinstance(new, dict) and "files" in new:
        return _input_difference(old, new)
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "; ".join(f"{k}: was {_short(old.get(k))}, now {_short(new.get(k))}" for k in keys[:3])
    return f"was {_short(old)}, now {_short(new)}"


def _input_difference(old: dict, new: dict) -> str:
    """Which input file was added, removed or changed (size or modification time)."""
    before = {f["path"]: f for f in old.get("files", [])}
    after = {f["path"]: f for f in new["files"]}
    for path in sorted(set(before) | set(after)):
        if path not in after:
            return f"{path} is gone"
        if path not in before:
            return f"{path} is new"
        if before[path] != after[path]:
            return f"{path} changed (size {before[path]['size']} -> {after[path]['size']} bytes, or modified)"
    return f"the input was {old.get('path')}, now {new['path']}" if old.get("path") != new["path"] else "its shards differ"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def write(output_dir: Path, manifest: dict) -> None:
    replace(output_dir / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2), encoding="utf8"))
