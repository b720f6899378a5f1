"""A real Mosquitto: plain and TLS listeners, a password file and an ACL, and
:class:`HardenedMosquitto`, the broker configuration this repository ships for production.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.integration.servers.pki import CertFiles, Pki
from tests.integration.servers.processes import (
    CONFIG_DIR,
    LOOPBACK,
    START_TIMEOUT_S,
    ServerProcess,
    free_ports,
    port_open,
)


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
