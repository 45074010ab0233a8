"""Domain packs: everything specific to a domain, outside the generic stages.

Two packs are built in: ``checkout`` (the checkout-migration scenario the demo runs) and
``generic`` (the default for ``opsloop cycle``: every KPI watched both ways, honest words, no
revenue figure, nothing auto-executes but read-only diagnostics). A user's pack is a directory with
a ``pack.yaml`` (schema: :class:`opsloop.packs.model.Pack`). Select one with ``--pack`` or
``OPSLOOP_PACK`` (a built-in name or a directory).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from opsloop.packs.model import Pack

BUILTIN_DIR = Path(__file__).resolve().parent
BUILTIN = ("checkout", "generic")
PACK_FILE = "pack.yaml"


class PackError(ValueError):
    """A pack that cannot be loaded; the message names the file and the key."""


def _describe(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{path}: " + "; ".join(parts)


def pack_dir(name_or_dir: str | Path) -> Path:
    """The directory of a built-in pack name or of a user's pack directory (or its ``pack.yaml``)."""
    text = str(name_or_dir)
    if text in BUILTIN:
        return BUILTIN_DIR / text
    path = Path(text).expanduser()
    if path.is_file():
        path = path.parent
    return path


@lru_cache(maxsize=16)
def _load(directory: Path) -> Pack:
    file = directory / PACK_FILE
    if not file.is_file():
        raise PackError(f"{file}: no such pack file (built-in packs: {', '.join(BUILTIN)})")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackError(f"{file}: not readable YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise PackError(f"{file}: expected a mapping of keys at the top level")
    if "root" in raw:
        raise PackError(f"{file}: root: unknown key")
    try:
        pack = Pack.model_validate({**raw, "root": directory})
    except ValidationError as exc:
        raise PackError(_describe(file, exc)) from None
    if not pack.catalog_path.is_file():
        raise PackError(f"{file}: actions.catalog: no such file {pack.catalog_path.name}")
    runbooks = pack.runbooks_path
    if runbooks is not None and not runbooks.exists():
        raise PackError(f"{file}: runbooks: no such directory {pack.runbooks}")
    return pack


def load_pack(name_or_dir: str | Path = "generic") -> Pack:
    """Load and validate a pack by built-in name or directory.

    Raises :class:`PackError` (a ``ValueError``) naming the file and key on any problem: a missing
    file, bad YAML, an unknown key, a bad value, a missing catalog or runbook directory.
    """
    return _load(pack_dir(name_or_dir).resolve())
