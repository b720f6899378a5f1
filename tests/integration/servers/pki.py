"""A throwaway PKI for the TLS tests: a CA per session, server and client certificates, and on
demand an expired certificate or one for another host name; made here, never committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.servers.processes import LOOPBACK


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
