"""The TLS details recorded from a verified peer come from ssl's decoded certificate
(no cryptography import); they must equal, field for field and byte for byte in JSON,
what cryptography reads from the same DER certificate."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fleet.lab.certs import LabCertificates, self_signed
from fleet.probes.smtp import TlsContexts, _from_decoded, _parse_certificate


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """A real TLS handshake in memory; the client's side of it, verified."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client_side, server_side):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        try:
            client_side.do_handshake()
            server_side.do_handshake()
            return client_side
        except ssl.SSLWantReadError:
            continue
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize(
    "names",
    [
        ("localhost", "127.0.0.1"),
        ("mail.example.test", "localhost", "::1", "127.0.0.1", "2001:db8::25"),
        ("localhost",),
    ],
)
def test_decoded_certificate_equals_cryptography(
    certs: LabCertificates, names: tuple[str, ...]
) -> None:
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    peer = _handshake(certs.server_context(*names, expires_in=timedelta(days=97)), client)
    der = peer.getpeercert(binary_form=True)
    assert der is not None
    decoded = _from_decoded(peer.getpeercert())
    assert decoded is not None, "a lab certificate must not need cryptography"
    parsed = _parse_certificate(der)
    assert decoded.model_dump_json() == parsed.model_dump_json()
    assert parsed.san
    assert decoded.san == parsed.san  # the order too: names, then addresses
    assert TlsContexts().certificate(der, peer.getpeercert()) == parsed


def test_incomplete_decoded_form_falls_back_to_cryptography(certs: LabCertificates) -> None:
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    peer = _handshake(certs.server_context(), client)
    der = peer.getpeercert(binary_form=True)
    assert der is not None
    unusual = {**peer.getpeercert(), "subject": ((("emailAddress", "ops@example.test"),),)}
    assert _from_decoded(unusual) is None
    assert TlsContexts().certificate(der, unusual) == _parse_certificate(der)
    # an unverified peer gives no decoded form: cryptography reads the DER
    assert TlsContexts().certificate(der, {}) == _parse_certificate(der)


def test_scan_path_does_not_import_cryptography() -> None:
    code = "import sys, fleet.cli, fleet.runner; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _certificate_file(folder: Path, subject: x509.Name) -> tuple[Path, bytes]:
    _, cert = self_signed(subject)
    path = folder / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert.public_bytes(serialization.Encoding.DER)


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)])


@pytest.mark.parametrize(
    ("rdns", "rendered_by_ssl"),
    [
        (
            [(NameOID.ORGANIZATION_NAME, "a,b+c;d"), (NameOID.ORGANIZATIONAL_UNIT_NAME, " lead")],
            True,
        ),
        ([(NameOID.COUNTRY_NAME, "US"), (NameOID.LOCALITY_NAME, 'q"<>\\x')], True),
        ([(NameOID.ORGANIZATION_NAME, "#hash"), (NameOID.STATE_OR_PROVINCE_NAME, "trail ")], True),
        ([(NameOID.ORGANIZATION_NAME, "x"), (NameOID.COMMON_NAME, "mx.example.test")], True),
        ([(NameOID.EMAIL_ADDRESS, "a@b.test"), (NameOID.COMMON_NAME, "mx.example.test")], True),
        ([(NameOID.DOMAIN_COMPONENT, "test"), (NameOID.USER_ID, "u1")], True),
        ([(NameOID.STREET_ADDRESS, "Rue 1"), (NameOID.ORGANIZATION_NAME, "Zürich AG")], True),
        ([(NameOID.EMAIL_ADDRESS, "ops@example.test"), (NameOID.ORGANIZATION_NAME, "x")], False),
    ],
)
def test_names_without_common_name_render_as_cryptography_does(
    tmp_path: Path, rdns: list[tuple[x509.ObjectIdentifier, str]], rendered_by_ssl: bool
) -> None:
    path, der = _certificate_file(tmp_path, x509.Name([_attr(oid, v) for oid, v in rdns]))
    # ssl's own decoder of a certificate file: the same code getpeercert() runs
    decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    fast = _from_decoded(decoded)
    assert (fast is not None) == rendered_by_ssl
    assert TlsContexts().certificate(der, decoded) == _parse_certificate(der)
    if fast is not None:
        assert fast.model_dump_json() == _parse_certificate(der).model_dump_json()


def test_multi_valued_rdn_falls_back(tmp_path: Path) -> None:
    rdn = x509.RelativeDistinguishedName(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "o"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "u"),
        ]
    )
    path, der = _certificate_file(tmp_path, x509.Name([rdn]))
    decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    assert _from_decoded(decoded) is None
    assert TlsContexts().certificate(der, decoded) == _parse_certificate(der)


class _CountingPeer:
    """An SSLObject that counts how often its certificate is asked for."""

    def __init__(self, peer: ssl.SSLObject) -> None:
        self._peer = peer
        self.asked = 0

    def getpeercert(self, binary_form: bool = False) -> object:
        self.asked += 1
        return self._peer.getpeercert(binary_form)

    def cipher(self) -> object:
        return self._peer.cipher()

    def version(self) -> object:
        return self._peer.version()


def test_details_from_the_handshakes_decoded_certificate(certs: LabCertificates) -> None:
    """The transport's decoded certificate (its "peercert" extra) gives the same details
    as the DER form, and a peer seen before costs no certificate call at all."""
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    server = certs.server_context("localhost", "127.0.0.1")
    first, again = _handshake(server, client), _handshake(server, client)
    by_der = TlsContexts().details(first, True, None)
    contexts = TlsContexts()
    counting = _CountingPeer(first)
    by_decoded = contexts.details(counting, True, None, first.getpeercert())  # type: ignore[arg-type]
    assert by_decoded == by_der
    assert by_decoded.san == ["localhost", "127.0.0.1"]
    counting_again = _CountingPeer(again)
    peercert = again.getpeercert()
    assert contexts.details(counting_again, True, None, peercert) is by_decoded  # type: ignore[arg-type]
    assert counting_again.asked == 0
    # another cap (or an unverified peer, whose decoded form is empty) is other details
    capped = contexts.details(counting_again, True, "1.2", peercert)  # type: ignore[arg-type]
    assert capped.capped_at == "1.2"
    assert capped.subject == by_der.subject
    unverified = contexts.details(again, False, None, {})
    assert unverified.verified is None
    assert unverified.subject == by_der.subject
