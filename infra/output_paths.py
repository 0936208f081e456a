"""Where a command will write its results, checked before it does any work.

A typo in ``--report`` or ``--timeline`` must not cost a whole run (or a
round of AWS calls) and then lose the result: every output path is checked,
and its folder created, first.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.errors import UserError


def checked(flag: str, path: Path, *, folder: bool = False) -> Path:
    """``path`` (a file, or a folder when ``folder``) ready to be written; else ``UserError``."""
    parent = path if folder else path.parent
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a folder; choose a folder")
    if not folder and path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name in it, e.g. {path}/out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot create {parent} ({exc.strerror}); choose another path"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {parent} is not writable; choose another path")
    return path
