"""The external programs the corpora run (espeak-ng, festival's ``text2wave``, sox): found on the
``PATH``, or an error naming the Debian package to install."""
from __future__ import annotations

import shutil

# program -> the Debian packages that provide it (and its voices)
APT_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox",
                "text2wave": "festival festvox-kallpc16k festvox-us-slt-hts"}


def require_tool(name: str) -> str:
    """Path of executable ``name``; ``RuntimeError`` naming the Debian package if it is missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"`{name}` not found: install it with "
                           f"`apt-get install {APT_PACKAGES.get(name, name)}`")
    return path


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None
