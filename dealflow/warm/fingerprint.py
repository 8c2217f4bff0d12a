"""What the warm parent was started with, to notice a deploy: the release its folder points
to, the modification times and sizes of the code, and the installed packages."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

CODE_FOLDERS = ("dealflow", "flows", "tasks", "models", "web", "templates", "locale")
CODE_FILES = ("prefect.yaml", "requirements.lock", "pyproject.toml")


def code_fingerprint(roots: list[Path]) -> str:
    """Changes when a file of the code in ``roots`` changes, when a root (a symlink to the
    current release, say) points elsewhere, or when a package is installed or removed."""
    digest = hashlib.sha256()
    walked: set[Path] = set()
    for given in roots:
        root = given.resolve()  # a symlink pointed elsewhere changes the digest
        digest.update(str(root).encode())
        if root in walked:  # DEALFLOW_CODE_DIR is usually this installation's folder
            continue
        walked.add(root)
        for name in CODE_FILES:
            _add(digest, root / name)
        for folder in CODE_FOLDERS:
            for directory, subfolders, files in os.walk(root / folder):
                subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
                for name in sorted(files):
                    if not name.endswith((".pyc", ".pyo")):
                        _add(digest, Path(directory) / name)
    for entry in sorted(p for p in sys.path if p.endswith("site-packages")):
        _add(digest, Path(entry))  # a directory's time changes as packages come and go
    return digest.hexdigest()


def _add(digest: hashlib._Hash, path: Path) -> None:
    try:
        found = path.stat()
    except OSError:
        digest.update(f"{path}:absent".encode())
        return
    digest.update(f"{path}:{found.st_mtime_ns}:{found.st_size}".encode())
