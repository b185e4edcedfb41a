"""Files written whole or not at all: write a temporary name in the same
folder, then rename it (atomic on one file system), so that a reader, or a
rerun after a crash, never sees half a file."""
import os
import socket
from pathlib import Path
from typing import Callable

TMP_MARK = ".tmp-"  # what a crash can leave behind; a run removes it when it starts


def temporary_name(path: Path) -> Path:
    """Unique per host and process, so that workers on shared storage never collide."""
    return path.with_name(f"{path.name}{TMP_MARK}{socket.gethostname()}.{os.getpid()}")


def replace(path: Path, write: Callable[[Path], None]) -> None:
    tmp = temporary_name(path)
    write(tmp)
    os.replace(tmp, path)


def remove_temporary_files(folder: Path) -> None:
    for path in folder.glob(f"*{TMP_MARK}*"):
        path.unlink()
