"""Check an uploaded document in a separate process: parse it and count its passages.

Parsing a PDF is CPU-bound Python that holds the GIL; in the API's process it would slow every other
request (``/health`` included). :func:`count_passages` runs ``python -m opsloop.rag.check PATH``
instead, with a time limit after which the child is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


class CheckFailed(ValueError):
    """The document cannot be used: unreadable, binary, too many pages, or not parsed in time."""


async def count_passages(path: Path, timeout: float) -> int:
    """The number of passages :func:`opsloop.rag.documents.load_documents` makes of ``path``,
    computed in a child process killed after ``timeout`` seconds; raises :class:`CheckFailed` with a
    one-line reason naming the file."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opsloop.rag.check", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CheckFailed(f"{path}: not parsed within {timeout:.0f} s") from None
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CheckFailed(f"{path}: could not be parsed ({err.decode(errors='replace').strip()[-200:]})") from None
    if "error" in answer:
        raise CheckFailed(answer["error"])
    return int(answer["chunks"])


def main(argv: list[str]) -> int:
    from opsloop.rag.documents import load_documents

    try:
        print(json.dumps({"chunks": len(load_documents(argv[0]))}))
    except (ValueError, OSError) as exc:
        print(json.dumps({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
