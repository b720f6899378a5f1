"""``station audit verify PATH``: check an audit trail and say in one line whether it is intact.

The trail may be split over several ``*.jsonl`` files (rotation); sorted by name they form one
chain, so they are verified as one and a fault is reported with its file as well as its line.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator
from pathlib import Path

from station.domain.audit import verify_lines
from station.services.audit_writer import AUDIT_FILE, HEAD_FILE, read_head


def _trail(path: Path) -> tuple[list[Path], tuple[int, str] | None, str]:
    """The files of the trail at ``path``, its head and how to name it in the verdict."""
    if path.is_file():
        # The head describes the live file; any other file is checked on its chain alone.
        head = read_head(path.parent) if path.name == AUDIT_FILE else None
        return [path], head, str(path)
    directory = path / "audit" if (path / "audit").is_dir() else path
    files = sorted(p for p in directory.glob("*.jsonl") if p.is_file())
    name = str(files[0]) if len(files) == 1 else f"{directory} ({len(files)} files)"
    return files, read_head(directory), name


def verify_path(path: Path) -> tuple[int, str]:
    """Verify the audit trail at ``path``.

    Args:
        path: ``audit.jsonl`` itself, the audit directory, or a data directory holding ``audit/``.

    Returns:
        ``(exit code, one line)``: 0 and ``OK ...`` when intact; 1 and ``FAIL line N (seq S):
        kind: why`` naming the first bad record; 2 when there is no trail to read at ``path``.
    """
    if not path.exists():
        return 2, f"no such file or directory: {path}"
    # The head is read before the lines: a writer appending meanwhile leaves the file ahead of
    # the head, which verifies; read the other way round it would look like a cut-off tail.
    files, head, name = _trail(path)
    if not files and head is None:
        return 2, f"no audit trail (*.jsonl) in {path}"
    counts = [0] * len(files)

    def lines() -> Generator[bytes, None, None]:
        for index, file in enumerate(files):
            with file.open("rb") as fh:
                for line in fh:
                    counts[index] += 1
                    yield line

    stream = lines()
    try:
        result = verify_lines(stream, head=head)
    except OSError as exc:
        return 2, f"cannot read the audit trail: {exc}"
    finally:
        stream.close()  # verification stops at the first fault; close the file it stopped in
    if result.ok:
        return 0, f"OK {result.records} records, chain intact: {name}"
    seq = "?" if result.seq is None else result.seq
    verdict = f"FAIL line {result.line} (seq {seq}): {result.kind}: {result.message}"
    if len(files) > 1 and result.line is not None:
        verdict += f" [{_locate(files, counts, result.line)}]"
    return 1, verdict


def _locate(files: list[Path], counts: list[int], line: int) -> str:
    """``file line n`` for a line number counted across all the files."""
    for file, count in zip(files, counts, strict=True):
        if line <= count:
            return f"{file.name} line {line}"
        line -= count
    return f"after the end of {files[-1].name}" if files else "no file"


def export_audit(audit_dir: Path, target: Path) -> tuple[list[str], str]:
    """Copy the trail (``*.jsonl`` and the head) into ``target`` and verify the copy there.

    Returns the names copied and the one-line verdict on the copy, so what the auditor takes
    away is checked as it is, not the live files it came from.
    """
    target.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    for source in sorted(audit_dir.iterdir()):
        if source.is_file() and (source.suffix == ".jsonl" or source.name == HEAD_FILE):
            shutil.copy2(source, target / source.name)
            copied.append(source.name)
    _code, verdict = verify_path(target)
    return copied, verdict
