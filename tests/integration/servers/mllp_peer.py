"""A hospital interface engine for the HL7 tests: an MLLP listener built on ``hl7apy``'s server,
run as its own process so a test can stop, kill and restart it.

Every message it receives is parsed and validated against HL7 2.6 with ``hl7apy``'s strict
validation (plus the version and the two message types the station may send), and one JSON line
per message goes to ``--log``: the control id, the type, whether it validated and why not, the
answer given, and the fields a test checks (PID-3, PID-5, PID-7, the bed in PV1-3, for an alarm
its id and facets, for observations each OBX's code, value and unit). Patient data in that file
is the test's own fake data.

How it answers is read from ``--mode`` (a file holding one word) for every message, so a test
switches it without a restart: ``AA`` (accept), ``AE`` (refuse), ``AR`` (not now), ``silent`` (read,
log, never answer). An invalid message is answered ``AE`` whatever the mode (unless silent).

Unlike ``hl7apy``'s own handler (one message per connection), this one keeps the connection
open for the next message, as interface engines do. It imports nothing of the station: what it
checks, it checks with the library alone.

    python mllp_peer.py --port P --log FILE --mode FILE
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hl7apy.consts import MLLP_ENCODING_CHARS, VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.mllp import MLLPRequestHandler, MLLPServer
from hl7apy.parser import parse_message

START = MLLP_ENCODING_CHARS.SB.encode()
END = (MLLP_ENCODING_CHARS.EB + MLLP_ENCODING_CHARS.CR).encode()
TYPES = {"ORU^R01^ORU_R01", "ORU^R40^ORU_R01"}
_log_lock = threading.Lock()


def _er7(element: Any) -> str:
    try:
        return str(element.to_er7())
    except Exception:  # an absent field
        return ""


def _fields(message: Any) -> dict[str, Any]:
    """What the tests look at, read from the parsed message."""
    out: dict[str, Any] = {}
    result = message.oru_r01_patient_result
    patient = result.oru_r01_patient
    pid = patient.pid
    out["pid3"] = [_er7(rep) for rep in pid.pid_3]
    out["pid5"] = _er7(pid.pid_5)
    out["pid7"] = _er7(pid.pid_7)
    pv1 = patient.oru_r01_visit.pv1
    out["bed"] = _er7(pv1.pv1_3.pl_3)
    out["patient_class"] = _er7(pv1.pv1_2)
    observations = []
    orders = result.oru_r01_order_observation
    for order in orders:
        for observation in order.oru_r01_observation:
            obx = observation.obx
            observations.append(
                {
                    "code": _er7(obx.obx_3.cwe_1),
                    "loinc": _er7(obx.obx_3.cwe_4),
                    "value": _er7(obx.obx_5),
                    "unit": _er7(obx.obx_6.cwe_4),
                    "device": _er7(obx.obx_18),
                    "by": _er7(obx.obx_16),
                    "flags": [_er7(f) for f in obx.obx_8],
                }
            )
    out["obx"] = observations
    if _er7(message.msh.msh_9.msg_2) == "R40":
        first = orders[0].obr
        out["alarm_id"] = _er7(first.obr_3.ei_1)
        facets = {o["code"]: o["value"] for o in observations}
        out["phase"] = facets.get("68481", "")
        out["state"] = facets.get("68482", "")
        out["inactivation"] = facets.get("68483", "")
        out["priority"] = facets.get("68484", "")
        out["by"] = observations[0]["by"] if observations else ""
        out["text"] = observations[0]["value"] if observations else ""
    return out


def examine(text: str) -> dict[str, Any]:
    """Validate ``text`` strictly and read its fields; ``valid`` False with ``error`` if not."""
    entry: dict[str, Any] = {"valid": False, "error": "", "control_id": "", "type": ""}
    try:
        loose = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
        entry["control_id"] = _er7(loose.msh.msh_10)
        entry["type"] = _er7(loose.msh.msh_9)
        entry["version"] = _er7(loose.msh.msh_12)
    except Exception as exc:
        entry["error"] = f"unparseable: {type(exc).__name__}: {exc}"
        return entry
    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        message.validate()
        if entry["version"] != "2.6":
            raise ValueError(f"version {entry['version']}, not 2.6")
        if entry["type"] not in TYPES:
            raise ValueError(f"message type {entry['type']}")
        if not entry["control_id"]:
            raise ValueError("no control id")
        entry.update(_fields(message))
        entry["valid"] = True
    except Exception as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
    return entry


def ack(control_id: str, trigger: str, code: str, text: str) -> bytes:
    """The answer, built with hl7apy, framed."""
    message = Message("ACK", version="2.6", validation_level=VALIDATION_LEVEL.STRICT)
    message.msh.msh_3.hd_1 = "TEST-ENGINE"
    message.msh.msh_9.msg_1 = "ACK"
    message.msh.msh_9.msg_2 = trigger or "R01"
    message.msh.msh_9.msg_3 = "ACK"
    message.msh.msh_10 = f"ack{int(time.time() * 1000) % 10**12}"
    message.msh.msh_11.pt_1 = "P"
    message.msh.msh_12.vid_1 = "2.6"
    msa = message.add_segment("MSA")
    msa.msa_1 = code
    msa.msa_2 = control_id or "unknown"
    if text:
        msa.msa_3 = text[:80]
    return str(message.to_mllp()).encode()


class KeepAliveHandler(MLLPRequestHandler):
    """hl7apy's MLLP handler, reading message after message on one connection."""

    def handle(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while START in buffer and END in buffer:
                start = buffer.index(START)
                end = buffer.index(END, start)
                text = buffer[start + 1 : end].decode("utf-8", errors="replace")
                buffer = buffer[end + len(END) :]
                if not self._answer(text):
                    return

    def _answer(self, text: str) -> bool:
        server: PeerServer = self.server  # type: ignore[assignment]
        mode = server.mode()
        entry = examine(text)
        entry["answered"] = mode if entry["valid"] or mode == "silent" else "AE"
        entry["at"] = time.time()
        server.write(entry)
        if mode == "silent":
            return True
        trigger = entry["type"].split("^")[1] if "^" in entry["type"] else ""
        try:
            self.request.sendall(
                ack(entry["control_id"], trigger, entry["answered"], entry["error"])
            )
        except OSError:
            return False
        return True


class PeerServer(MLLPServer):
    """hl7apy's threading MLLP server with this module's handler, log and mode file."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, log: Path, mode: Path) -> None:
        self.log_path = log
        self.mode_path = mode
        super().__init__(
            "127.0.0.1", port, {}, timeout=None, request_handler_class=KeepAliveHandler
        )

    def mode(self) -> str:
        try:
            word = self.mode_path.read_text().strip()
        except OSError:
            return "AA"
        return word if word in {"AA", "AE", "AR", "silent"} else "AA"

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _log_lock, self.log_path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--mode", type=Path, required=True)
    args = parser.parse_args()
    server = PeerServer(args.port, args.log, args.mode)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"mllp peer on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
