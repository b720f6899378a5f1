"""Fuzzed heads, records, checkpoints and bundles never crash a verifier nor stop the station
from starting (hardening, "audit edges": a nested ``audit.head`` raised ``RecursionError`` and
the station did not start; a bundle without ``records.jsonl``, or with seq ``Infinity``, crashed
the verifier).

No hypothesis here: a seeded mutator (byte flips, truncations, inserted bytes, JSON-structure
mutations, deep nesting, huge numbers, ``NaN``/``Infinity``, wrong types, duplicated keys, lines
dropped, repeated or swapped) applied to a real keyed trail, its signed head, a published
checkpoint and a bundle. Every case must give a verdict, and a verdict of "intact" is held to
an oracle: the records it vouched for are the ones written (so no mutation passes as intact
while changing what the trail says). The seed is printed on failure; ``AUDIT_FUZZ_SEED`` replays.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from station.cli.audit import verify_path
from station.domain.audit.chain import canonical_json, load_object, verify_lines
from station.domain.audit.head import Head, parse_head
from station.domain.audit.keyed import Published, verify_trail
from station.domain.audit.quick import verify_quick
from station.services.audit.bundle import MANIFEST, RECORDS, verify_bundle
from station.services.audit.trail_files import HEAD_FILE
from tests.unit.audit_cases import make_bundle
from tests.unit.test_audit_keyed import KEY, lines_of, write, writer

SEED = int(os.environ.get("AUDIT_FUZZ_SEED", "20261203"))
TRAIL_CASES = 4_000  # verify_trail and verify_quick on mutated lines and heads
HEAD_CASES = 3_000
CHECKPOINT_CASES = 2_000
BUNDLE_CASES = 1_000  # written to disk and verified as ``station audit verify`` does
FOLDER_CASES = 300  # a whole audit folder, through verify_path
START_CASES = 20  # the station's start check (AuditWriter.start) on a mutated folder
PUBLIC = KEY.public_key()

HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    10**300,
    1e308,
    -0.0,
    "",
    "x" * 5000,
    "\ud800",
    "\u2028",
    [],
    {},
    [[[[]]]],
    {"seq": 1},
    "0" * 64,
]
RAW_HOSTILE = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"-1e999",
    b"9" * 5000,
    b"[" * 5000 + b"]" * 5000,
    b"{" * 3000,
    b'"\\ud800"',
    b"1" * 400,
]


class Mutator:
    """Seeded mutations of bytes and of the JSON they hold."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def bytes_(self, data: bytes) -> bytes:
        rng = self.rng
        how = rng.randrange(8)
        if not data or how == 0:
            return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        at = rng.randrange(len(data))
        if how == 1:  # flip a byte
            return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        if how == 2:  # truncate
            return data[:at]
        if how == 3:  # drop a stretch
            return data[:at] + data[at + rng.randrange(1, 40) :]
        if how == 4:  # a hostile token in the middle
            return data[:at] + rng.choice(RAW_HOSTILE) + data[at:]
        if how == 5:  # replace a number with a hostile one
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                i = rng.choice(digits)
                return data[:i] + rng.choice(RAW_HOSTILE) + data[i + 1 :]
            return data
        if how == 6:  # deep nesting around it all
            depth = rng.choice([40, 1000, 100_000])
            return b"[" * depth + data + b"]" * rng.choice([0, depth])
        return self.json_(data)

    def json_(self, data: bytes) -> bytes:
        """A structural change of the JSON value in ``data`` (a wrong type, a hostile value,
        a key dropped or duplicated); non-JSON data gets a byte mutation instead."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return data[: self.rng.randrange(len(data) + 1)]
        rng = self.rng
        holder, key = self._pick(doc)
        if holder is None:
            return json.dumps(rng.choice(HOSTILE)).encode()
        how = rng.randrange(5)
        if how == 0 and isinstance(holder, dict):
            del holder[key]
        elif how == 1 and isinstance(holder, dict):
            text = json.dumps(doc)
            return text.replace(f'"{key}":', f'"{key}": 1, "{key}":', 1).encode()
        elif how == 2:
            token = rng.choice(RAW_HOSTILE).decode("ascii")
            holder[key] = "@@TOKEN@@"
            return json.dumps(doc).replace('"@@TOKEN@@"', token, 1).encode()
        else:
            holder[key] = rng.choice(HOSTILE)
        return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")

    def _pick(self, doc: Any) -> tuple[Any, Any]:
        """A random container inside ``doc`` and one of its keys (or indexes)."""
        holder, key = None, None
        node = doc
        for _ in range(self.rng.randrange(1, 4)):
            if isinstance(node, dict) and node:
                key = self.rng.choice(sorted(node))
            elif isinstance(node, list) and node:
                key = self.rng.randrange(len(node))
            else:
                break
            holder, node = node, node[key]
        return holder, key

    def lines(self, lines: list[bytes]) -> list[bytes]:
        out = list(lines)
        rng = self.rng
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(out))
            how = rng.randrange(6)
            if how == 0:
                del out[i]
            elif how == 1:
                out.insert(i, out[rng.randrange(len(out))])
            elif how == 2 and len(out) > 1:
                j = rng.randrange(len(out))
                out[i], out[j] = out[j], out[i]
            elif how == 3:
                out[i] = self.json_(out[i].rstrip(b"\n")) + b"\n"
            else:
                out[i] = self.bytes_(out[i])
            if not out:
                out = [b"\n"]
        return out


def records_of(lines: list[bytes], *, seals: bool = True) -> list[bytes]:
    """The canonical JSON of every record the lines hold (what a verdict of intact vouches for);
    without the seals for the quick check, which leaves them to the check after the start."""
    found = []
    for line in lines:
        obj = load_object(line)
        if not isinstance(obj, str):
            if not seals:
                obj.pop("seal", None)
            found.append(canonical_json(obj))
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("fuzz") / "audit"
    published = write(folder, 8)
    lines = lines_of(folder)
    bundle = folder.parent / "bundle"
    files = make_bundle(bundle, KEY, lines)
    return {
        "folder": folder,
        "lines": lines,
        "head": (folder / HEAD_FILE).read_bytes(),
        "checkpoint": published[-1].to_json().encode(),
        "bundle": files,
        "records": records_of(lines),
    }


def run(cases: int, case: Callable[[Mutator, int], None], offset: int) -> None:
    """``cases`` cases of ``case``, each with its own seeded mutator; the seed on failure."""
    for i in range(cases):
        seed = SEED * 1_000_003 + offset + i
        try:
            case(Mutator(random.Random(seed)), i)
        except AssertionError as exc:
            raise AssertionError(f"case seed {seed}: {exc}") from None
        except Exception as exc:
            raise AssertionError(f"case seed {seed} raised {type(exc).__name__}: {exc}") from exc


def test_fuzzed_trails_heads_checkpoints_and_bundles_never_crash_a_verifier(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    began = time.monotonic()
    lines, original = corpus["lines"], corpus["records"]
    unsealed = records_of(lines, seals=False)

    def trail_case(m: Mutator, i: int) -> None:
        mutated = m.lines(lines)
        head_bytes = corpus["head"] if i % 3 else m.bytes_(corpus["head"])
        head = parse_head(head_bytes)
        quick = verify_quick(mutated, PUBLIC, head=head)
        assert not quick.ok or records_of(mutated, seals=False) == unsealed, quick
        if i % 4 == 0:  # the full check costs a seal per record: a quarter of the cases
            full = verify_trail(mutated, PUBLIC, head=head)
            assert not full.result.ok or records_of(mutated) == original, full.line()
        assert isinstance(
            verify_lines(mutated, head=head.point if isinstance(head, Head) else None).ok, bool
        )

    def head_case(m: Mutator, _i: int) -> None:
        data = m.bytes_(corpus["head"])
        head = parse_head(data)
        result = verify_quick(lines, PUBLIC, head=head)
        if result.ok:  # a head still naming the end, or the clean stop's end: nothing lost
            assert not isinstance(head, Head) or head.seq <= len(lines)

    def checkpoint_case(m: Mutator, _i: int) -> None:
        data = m.bytes_(corpus["checkpoint"])
        try:
            checkpoint = Published.from_json(data)
        except ValueError:
            return
        if checkpoint.verifies(PUBLIC):
            assert checkpoint.to_json().encode() == corpus["checkpoint"] or (
                canonical_json(checkpoint.record)
                == canonical_json(json.loads(corpus["checkpoint"])["record"])
            )

    bundle_dir = tmp_path / "bundle"

    def bundle_case(m: Mutator, i: int) -> None:
        shutil.rmtree(bundle_dir, ignore_errors=True)
        bundle_dir.mkdir()
        files = dict(corpus["bundle"])
        name = [MANIFEST, RECORDS, MANIFEST, "manifest.sig", "station-audit.pub"][i % 5]
        if i % 7 == 0:
            files.pop(m.rng.choice(sorted(files)))
        else:
            files[name] = m.bytes_(files[name]) if i % 2 else m.json_(files[name])
        for file, data in files.items():
            (bundle_dir / file).write_bytes(data)
        code, text = verify_bundle(bundle_dir)
        assert code in (0, 1), text
        assert text.startswith(("OK bundle", "FAIL bundle: ")), text
        if code == 0:
            assert records_of((bundle_dir / RECORDS).read_bytes().splitlines(True)) == original

    folder = tmp_path / "folder"

    def folder_case(m: Mutator, i: int) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(corpus["folder"], folder)
        mutated = m.lines(lines)
        (folder / "audit.jsonl").write_bytes(b"".join(mutated))
        if i % 2:
            (folder / HEAD_FILE).write_bytes(m.bytes_(corpus["head"]))
        code, text = verify_path(folder)
        assert code in (0, 1, 2), text
        assert text, code
        assert code != 0 or records_of(mutated) == original, text

    for count, case, offset in (
        (TRAIL_CASES, trail_case, 0),
        (HEAD_CASES, head_case, 1_000_000),
        (CHECKPOINT_CASES, checkpoint_case, 2_000_000),
        (BUNDLE_CASES, bundle_case, 3_000_000),
        (FOLDER_CASES, folder_case, 4_000_000),
    ):
        lap = time.monotonic()
        run(count, case, offset)
        print(f"{case.__name__}: {count} cases in {time.monotonic() - lap:.1f} s")
    total = TRAIL_CASES + HEAD_CASES + CHECKPOINT_CASES + BUNDLE_CASES + FOLDER_CASES
    assert total >= 10_000
    print(f"{total} fuzz cases in {time.monotonic() - began:.1f} s (seed {SEED})")


def test_fuzzed_folders_never_stop_the_station_from_starting(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    def start_case(m: Mutator, i: int) -> None:
        folder = tmp_path / f"start-{i}"
        shutil.copytree(corpus["folder"], folder)
        (folder / "audit.jsonl").write_bytes(b"".join(m.lines(corpus["lines"])))
        if i % 2:
            (folder / HEAD_FILE).write_bytes(m.bytes_(corpus["head"]))
        anchor = Published.from_json(corpus["checkpoint"])
        w = writer(folder)
        w.start(published=[anchor])  # never raises on what the folder holds
        w.record("station.start")
        assert w.close() is True
        tail = (folder / "audit.jsonl").read_bytes().splitlines()[-2:]
        assert [json.loads(line)["action"] for line in tail] == [
            "station.start",
            "audit.checkpoint",
        ]

    run(START_CASES, start_case, 5_000_000)
