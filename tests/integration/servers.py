"""Real Mosquitto and victoria-metrics processes for the integration tests.

The station's promises (nothing acknowledged is lost, a device cannot speak for another, the
historian counts a point once) hold or fail in the real servers, not in a mock of them. These
classes start the Debian binaries on free loopback ports in a throwaway folder, wait until they
answer, and stop them by process id, so a test can also crash (``kill``) or restart them on the
same ports with the same data. :class:`HardenedMosquitto` runs the broker configuration this
repository ships for production; the certificates (a CA per session, and on demand an expired
server certificate or one for another host name) are made here, never committed.
:class:`TcpProxy` relays to a server and counts the connection attempts that reach it.

Every process started here is also remembered in a module registry that an ``atexit`` hook kills,
so an interrupted test run does not leave a broker behind.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
POLL_INTERVAL_S = 0.02
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
"""The configuration files this repository ships (``config/``)."""

Series = dict[str, Any]
"""One line of ``/api/v1/export``: ``metric`` (labels), ``values``, ``timestamps`` (ms)."""

_live: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _kill_leftovers() -> None:
    """Kill what a crashed or interrupted run did not stop, so no server outlives pytest."""
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on 127.0.0.1.

    The sockets are held open together so that the kernel cannot hand out the same port twice.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """Return one TCP port that was free on 127.0.0.1."""
    return free_ports(1)[0]


def port_open(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[int]:
    """Return the ids of live processes whose command line contains ``text``.

    Each server's command line names its own temporary folder, so this finds exactly this test's
    leftovers, and never the brokers of another test run on the same machine.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        if text in cmdline:
            found.append(int(entry.name))
    return found


# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files of a throwaway CA, a server certificate for localhost and a client certificate."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class CertFiles:
    """One certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *extensions: x509.ExtensionType,
    expired: bool = False,
) -> x509.Certificate:
    """Sign a certificate for ``subject`` by ``ca`` (certificate, key), or by itself if None.

    Valid from 5 minutes ago for 2 days, or, if ``expired``, from 10 days ago until yesterday.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    if expired:
        valid_from, valid_until = now - dt.timedelta(days=10), now - dt.timedelta(days=1)
    else:
        # Tolerate a little clock skew at the start.
        valid_from, valid_until = now - dt.timedelta(minutes=5), now + dt.timedelta(days=2)
    issuer, issuer_key = (name, key) if ca is None else (ca[0].subject, ca[1])
    is_ca = ca is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), True)
        .add_extension(
            # OpenSSL 3's strict verification refuses a CA without keyCertSign.
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pem(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertFiles:
    """Write ``<stem>.pem`` and ``<stem>.key`` (mode 0600) and return their paths."""
    files = CertFiles(directory / f"{stem}.pem", directory / f"{stem}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


def _subject_alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_pki(directory: Path) -> Pki:
    """Create a CA, a server certificate (``localhost``, ``127.0.0.1``) and a client certificate.

    EC P-256 keys keep this to milliseconds, so every test session has its own CA and no key is
    ever committed to the repository.
    """
    directory.mkdir(parents=True, exist_ok=True)
    keys = {role: ec.generate_private_key(ec.SECP256R1()) for role in ("ca", "server", "client")}
    ca = _issue("station test CA", keys["ca"], None)
    certs = {
        "ca": ca,
        "server": _issue(
            "localhost",
            keys["server"],
            (ca, keys["ca"]),
            _subject_alt_names(["localhost", LOOPBACK]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ),
        "client": _issue(
            "station",
            keys["client"],
            (ca, keys["ca"]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        ),
    }
    files = {role: _write_pem(directory, role, cert, keys[role]) for role, cert in certs.items()}
    return Pki(
        ca_cert=files["ca"].cert,
        ca_key=files["ca"].key,
        server_cert=files["server"].cert,
        server_key=files["server"].key,
        client_cert=files["client"].cert,
        client_key=files["client"].key,
    )


def issue_server_cert(
    pki: Pki,
    directory: Path,
    stem: str,
    hosts: Sequence[str] = ("localhost", LOOPBACK),
    *,
    expired: bool = False,
) -> CertFiles:
    """Sign another server certificate with ``pki``'s CA: for other ``hosts`` (a hostname
    mismatch), or one that has ``expired``. Written as ``<stem>.pem`` and ``<stem>.key``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(
        hosts[0],
        key,
        (ca_cert, ca_key),
        _subject_alt_names(hosts),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        expired=expired,
    )
    return _write_pem(directory, stem, cert, key)


# --- processes --------------------------------------------------------------------------------


class ServerProcess:
    """One server binary run in its own folder: start, wait until ready, stop by process id.

    Subclasses say how to run it (``command``) and how to tell it is ready (``is_ready``).
    ``pids`` keeps every process id this server had, so a fixture can prove that none outlived it.
    """

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.output_file = workdir / f"{self.name}.out"
        self.pids: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line that runs the server."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """Tell whether the running server answers as it should."""
        raise NotImplementedError

    def log_files(self) -> list[Path]:
        """Return the files where the server writes what it does."""
        return [self.output_file]

    @property
    def pid(self) -> int:
        """The process id of the current (or last) run."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the current process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Run the server and return once it is ready.

        Raises:
            RuntimeError: it exited or did not get ready in time (with the end of its log); a
                process that did not get ready is killed first.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running as pid {self.pid}")
        with self.output_file.open("ab") as output:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._proc = proc
        self.pids.append(proc.pid)
        _live[proc.pid] = proc
        deadline = time.monotonic() + timeout
        while True:
            ready = self.is_ready()
            # Checked after is_ready: a port taken by someone else must not pass for ours.
            if proc.poll() is not None:
                _live.pop(proc.pid, None)
                raise RuntimeError(
                    f"{self.name} exited with {proc.returncode} while starting:\n{self.log_tail()}"
                )
            if ready:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} was not ready after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Ask the server to end (SIGTERM) and wait; SIGKILL it if it does not end in time.

        Returns:
            Its exit status (negative: the signal that ended it), None if it never started.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.pop(proc.pid, None)
        return proc.returncode

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash or a power cut would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _live.pop(proc.pid, None)

    def restart(self) -> None:
        """Stop the server in order and start it again on the same ports with the same data."""
        self.stop()
        self.start()

    def leftover_pids(self) -> list[int]:
        """Return the ids of processes of this server that are still alive (should be none)."""
        alive = {pid for pid in self.pids if pid in _live and _live[pid].poll() is None}
        return sorted(alive | set(processes_mentioning(str(self.workdir))))

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of each log file, for error messages and failed tests."""
        parts = []
        for path in self.log_files():
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no log from {self.name})"


class Mosquitto(ServerProcess):
    """A Mosquitto broker with TLS, a password file, an ACL and on-disk persistence.

    Users, each with a fresh random password in ``passwords``: ``station`` (reads
    ``healthcare/#``, writes ``healthcare/station/#``), ``sensor`` (writes the document's single
    topic ``healthcare/sensor_data``) and each device added with ``add_device``, which may write
    only ``healthcare/devices/<its user name>/vitals``.

    The TLS listener is on ``port``; ``plain_port`` is a second loopback listener without TLS for
    tests that do not care about it (credentials are still required there).

    ``extra_config``, when given, is a shipped configuration file (such as
    ``config/mosquitto-ward.conf``) copied into ``conf.d/`` of the work folder and included with
    ``include_dir``, as Debian's ``mosquitto.conf`` includes ``/etc/mosquitto/conf.d``; the
    test's own ``autosave_interval`` and ``max_queued_messages`` are then left out, so the file's
    values rule.

    ``server_cert`` replaces the PKI's server certificate (an expired one, one for another host
    name); ``require_certificate`` makes the TLS listener demand a client certificate signed by
    the CA (mTLS), on top of the password.

    ``extra_password_lines`` and ``extra_acl_lines`` are appended as they are to the password file
    and the ACL: what an admin deploys by hand (a ``password_file`` line made elsewhere, a
    ``user`` block). ``device_pattern=False`` leaves out the ACL's ``pattern write
    healthcare/devices/%u/vitals``, so that only explicit ``user`` blocks grant a device anything.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        plain_listener: bool = True,
        extra_config: Path | None = None,
        server_cert: CertFiles | None = None,
        require_certificate: bool = False,
        extra_password_lines: Sequence[str] = (),
        extra_acl_lines: Sequence[str] = (),
        device_pattern: bool = True,
    ) -> None:
        super().__init__(workdir)
        for line in (*extra_password_lines, *extra_acl_lines):
            if "\n" in line or "\r" in line:
                raise ValueError(f"one line each, not {line!r}")
        self.extra_password_lines = tuple(extra_password_lines)
        self.extra_acl_lines = tuple(extra_acl_lines)
        self.device_pattern = device_pattern
        self.pki = pki
        self.server_cert = server_cert or CertFiles(pki.server_cert, pki.server_key)
        self.require_certificate = require_certificate
        self.host = LOOPBACK
        ports = free_ports(2)
        self.port = ports[0]
        self.plain_port: int | None = ports[1] if plain_listener else None
        self.ca_file = pki.ca_cert
        self.passwords: dict[str, str] = {
            "station": secrets.token_urlsafe(24),
            "sensor": secrets.token_urlsafe(24),
        }
        self.devices: list[str] = []
        self.config_file = workdir / "mosquitto.conf"
        self.password_file = workdir / "passwords"
        self.acl_file = workdir / "acl"
        self.log_file = workdir / "mosquitto.log"
        self.persistence_dir = workdir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.extra_config = extra_config
        self.include_dir = workdir / "conf.d"

    @property
    def persistence_file(self) -> Path:
        """Where the broker saves sessions and queued messages (every second, and on stop)."""
        return self.persistence_dir / "mosquitto.db"

    def add_device(self, name: str) -> str:
        """Add a device user with a random password and return the password.

        Raises:
            RuntimeError: the broker is running (the password file is written at start).
            ValueError: the name could not be a topic level or a user name.
        """
        if self.running:
            raise RuntimeError("add devices before start(), or stop() first")
        if not name or any(c in name for c in "+#/:\0 ") or name in self.passwords:
            raise ValueError(f"unusable or duplicate device name {name!r}")
        password = secrets.token_urlsafe(24)
        self.passwords[name] = password
        self.devices.append(name)
        return password

    def command(self) -> list[str]:
        return ["mosquitto", "-c", str(self.config_file)]

    def is_ready(self) -> bool:
        # A bare TCP connect: the broker logs it as a failed TLS handshake ("unexpected eof"),
        # which is harmless and marks in the log where the test began.
        ports = [self.port] if self.plain_port is None else [self.port, self.plain_port]
        return all(port_open(self.host, port) for port in ports)

    def log_files(self) -> list[Path]:
        return [self.output_file, self.log_file]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Write the configuration, password file and ACL, then run the broker."""
        self._write_password_file()
        extra_acl = "".join(f"{line}\n" for line in self.extra_acl_lines)
        self.acl_file.write_text(self._acl() + (f"\n{extra_acl}" if extra_acl else ""))
        self.acl_file.chmod(0o600)
        if self.extra_config is not None:
            self.include_dir.mkdir(exist_ok=True)
            shutil.copyfile(self.extra_config, self.include_dir / "ward.conf")
        self.config_file.write_text(self._config())
        super().start(timeout)

    def _write_password_file(self) -> None:
        self.password_file.unlink(missing_ok=True)
        for user, password in self.passwords.items():
            create = [] if self.password_file.exists() else ["-c"]
            subprocess.run(
                ["mosquitto_passwd", *create, "-b", str(self.password_file), user, password],
                check=True,
                capture_output=True,
            )
        if self.extra_password_lines:
            with self.password_file.open("a") as fh:
                fh.writelines(f"{line}\n" for line in self.extra_password_lines)
        self.password_file.chmod(0o600)

    def _acl(self) -> str:
        pattern = (
            "# A device may publish only as itself: the user name is its device id.\n"
            "pattern write healthcare/devices/%u/vitals\n\n"
        )
        users = (
            "user station\n"
            "topic read healthcare/#\n"
            "topic write healthcare/station/#\n\n"
            "user sensor\n"
            "topic write healthcare/sensor_data\n"
        )
        return (pattern if self.device_pattern else "") + users

    def _config(self) -> str:
        lines = [
            "# Written by tests/integration/servers.py for one test; thrown away after it.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
        ]
        if self.extra_config is None:
            lines += [
                # The default saves queued messages every 30 min only; a test that kills the
                # broker must find what was acknowledged more than a second before.
                "autosave_interval 1",
                # The default 1000 silently drops QoS 1 messages for a subscriber that falls
                # behind. The in-flight window (default 20) only holds messages back in that
                # queue, it drops nothing, so it keeps its default.
                "max_queued_messages 100000",
            ]
        lines += [
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # Started as root, Mosquitto drops to the mosquitto user, which cannot write the
            # persistence folder the tests created as root.
            lines.append("user root")
        if self.extra_config is not None:
            # Where Debian's mosquitto.conf has it: after the global settings, before listeners.
            lines += ["", f"include_dir {self.include_dir}"]
        lines += [
            "",
            f"listener {self.port} {self.host}",
            f"cafile {self.pki.ca_cert}",
            f"certfile {self.server_cert.cert}",
            f"keyfile {self.server_cert.key}",
            "tls_version tlsv1.2",
        ]
        if self.require_certificate:
            lines.append("require_certificate true")
        if self.plain_port is not None:
            lines += ["", f"listener {self.plain_port} {self.host}"]
        return "\n".join(lines) + "\n"


class HardenedMosquitto(Mosquitto):
    """Mosquitto run with the production files this repository ships, as a ward installs them.

    ``config/mosquitto-hardened.conf`` and ``config/mosquitto-ward.conf`` go to ``conf.d/``, the
    main file is what Debian's ``mosquitto.conf`` holds (persistence folder, log file,
    ``include_dir``), and ``config/mosquitto-acl.example`` is the ACL. Only the machine-specific
    lines of the hardened file are replaced: its port, certificate paths, password file and ACL
    path (each must appear exactly once, so a changed file fails here rather than run with the
    shipped paths). There is no plain listener, and every ``user`` of the ACL gets a password.
    """

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        hardened_config: Path = CONFIG_DIR / "mosquitto-hardened.conf",
        acl_example: Path = CONFIG_DIR / "mosquitto-acl.example",
        ward_config: Path = CONFIG_DIR / "mosquitto-ward.conf",
        extra_password_lines: Sequence[str] = (),
        extra_acl_lines: Sequence[str] = (),
    ) -> None:
        super().__init__(
            workdir,
            pki,
            plain_listener=False,
            extra_config=ward_config,
            extra_password_lines=extra_password_lines,
            extra_acl_lines=extra_acl_lines,
        )
        self.hardened_config = hardened_config
        self.acl_example = acl_example
        for line in acl_example.read_text().splitlines():
            if line.startswith("user "):
                self.passwords[line.split(maxsplit=1)[1].strip()] = secrets.token_urlsafe(24)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Write ``conf.d/hardened.conf`` with this broker's paths, then start as usual."""
        self.include_dir.mkdir(exist_ok=True)
        (self.include_dir / "hardened.conf").write_text(self._hardened())
        super().start(timeout)

    def _hardened(self) -> str:
        replacements = {
            "listener 8883": f"listener {self.port} {self.host}",
            "cafile /etc/mosquitto/certs/ca.crt": f"cafile {self.pki.ca_cert}",
            "certfile /etc/mosquitto/certs/server.crt": f"certfile {self.server_cert.cert}",
            "keyfile /etc/mosquitto/certs/server.key": f"keyfile {self.server_cert.key}",
            "password_file /etc/mosquitto/passwd": f"password_file {self.password_file}",
            "acl_file /etc/mosquitto/acl": f"acl_file {self.acl_file}",
        }
        lines = self.hardened_config.read_text().splitlines()
        for shipped, ours in replacements.items():
            found = [i for i, line in enumerate(lines) if line.strip() == shipped]
            if len(found) != 1:
                raise RuntimeError(
                    f"{self.hardened_config}: expected the line {shipped!r} once, "
                    f"found it {len(found)} times"
                )
            lines[found[0]] = ours
        return "\n".join(lines) + "\n"

    def _acl(self) -> str:
        return self.acl_example.read_text()

    def _config(self) -> str:
        lines = [
            "# Written by tests/integration/servers.py: what Debian's mosquitto.conf holds.",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"log_dest file {self.log_file}",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # see Mosquitto._config
        lines.append(f"include_dir {self.include_dir}")
        return "\n".join(lines) + "\n"


class TcpProxy:
    """A loopback TCP relay to a server that records when each connection arrived.

    The broker's log has whole seconds only; this counts connection attempts as the server side
    sees them, to the millisecond (``accepted_at``, ``time.monotonic()``). Bytes pass unchanged,
    TLS included. Use as a context manager; ``close`` ends every relayed connection.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(POLL_INTERVAL_S * 10)
        self.host = LOOPBACK
        self.port: int = self._listener.getsockname()[1]
        self.accepted_at: list[float] = []
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept_loop, "proxy-accept")

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def attempts(self) -> list[float]:
        """Arrival times (``time.monotonic()``) of the connections so far."""
        with self._lock:
            return list(self.accepted_at)

    def close(self) -> None:
        """Stop accepting, end every relayed connection and join the relay threads."""
        self._closed.set()
        for thread in list(self._threads):
            thread.join(STOP_TIMEOUT_S)
        self._listener.close()

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted_at.append(time.monotonic())
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._start(self._relay, "proxy-relay", client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], POLL_INTERVAL_S * 10)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()


def _find_victoria_metrics() -> str:
    for candidate in (shutil.which("victoria-metrics"), "/usr/bin/victoria-metrics"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("victoria-metrics not found: apt-get install victoria-metrics")


class VictoriaMetrics(ServerProcess):
    """A single-node victoria-metrics: the historian as the station sees it (InfluxDB v2 writes).

    ``-dedup.minScrapeInterval=1ms`` makes a point written twice count once, as InfluxDB does for
    the same measurement, tags and time; ``-retentionPeriod=100y`` keeps points with fixed old
    timestamps (the default keeps one month); ``-search.latencyOffset=0s`` lets queries (not only
    exports) see a point written a moment ago.
    """

    name = "victoria-metrics"

    def __init__(self, workdir: Path, binary: str | None = None) -> None:
        super().__init__(workdir)
        self.binary = binary or _find_victoria_metrics()
        self.host = LOOPBACK
        self.port = free_port()
        self.data_dir = workdir / "data"

    @property
    def url(self) -> str:
        """Base URL, e.g. for ``InfluxDBClient(url=...)``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-dedup.minScrapeInterval=1ms",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
        ]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def flush(self) -> None:
        """Make points received so far searchable now rather than within a second or two."""
        self._get("/internal/force_flush")

    def export(self, match: str) -> list[Series]:
        """Return every series matching a selector, e.g. ``{__name__=~"vitals_.*"}``, all time.

        Each series is ``{"metric": {"__name__": ..., labels...}, "values": [...],
        "timestamps": [ms, ...]}``.
        """
        body = self._get("/api/v1/export", {"match[]": match})
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def wait_for(
        self,
        match: str,
        predicate: Callable[[list[Series]], bool],
        timeout: float = 10.0,
    ) -> list[Series]:
        """Flush and export until ``predicate(series)`` holds; return those series.

        Raises:
            AssertionError: not within ``timeout`` seconds, with what the last export returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            series = self.export(match)
            if predicate(series):
                return series
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"victoria-metrics: {match} did not satisfy the condition in {timeout} s; "
                    f"last export: {json.dumps(series)[:2000]}"
                )
            time.sleep(POLL_INTERVAL_S * 5)
