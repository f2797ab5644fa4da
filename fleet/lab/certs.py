"""TLS certificates for the loopback lab: a private CA (trustme) the probe trusts through
`ca_file`, never by turning verification off."""

from __future__ import annotations

import ssl
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(
    subject: x509.Name, san: x509.SubjectAlternativeName | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate that is its own issuer, valid from yesterday for 30 days."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(key, hashes.SHA256())


class LabCertificates:
    """A lab CA, its PEM file on disk, and server TLS contexts signed by it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="fleet lab CA")
        self.ca_file = folder / "lab-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(
        self,
        *names: str,
        expires_in: timedelta = timedelta(days=365),
        max_version: ssl.TLSVersion | None = None,
        ca: trustme.CA | None = None,
    ) -> ssl.SSLContext:
        """A server-side context for the given names (default: localhost and 127.0.0.1)."""
        now = datetime.now(UTC)
        issuer = ca or self.ca
        cert = issuer.issue_cert(
            *(names or ("localhost", "127.0.0.1")),
            not_before=now - timedelta(days=30)
            if expires_in > timedelta(0)
            else now - timedelta(days=60),
            not_after=now + expires_in,
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if max_version is not None:
            # An old server on purpose: Python deprecates TLS 1.0/1.1, the lab still needs them.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = max_version
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        cert.configure_cert(context)
        return context

    def self_signed_context(self, name: str = "localhost") -> ssl.SSLContext:
        """A truly self-signed certificate: its own issuer, trusted by nobody."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        key, cert = self_signed(subject, x509.SubjectAlternativeName([x509.DNSName(name)]))
        cert_file = self.folder / f"self-signed-{name}.pem"
        key_file = self.folder / f"self-signed-{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context
