"""fleet.net: the small pure helpers for addresses and host:port, shared by the inventory,
the resolver and `fleet serve --listen`."""

from __future__ import annotations

import socket

import pytest

from fleet.errors import ListenError
from fleet.net import family_of, is_ip, join_host_port, split_host_port, unmapped
from fleet.serve import parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dns.msp.lan", ("dns.msp.lan", None)),
        ("localhost:5353", ("localhost", "5353")),
        ("192.0.2.1:53", ("192.0.2.1", "53")),
        ("[::1]:53", ("::1", "53")),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),  # a bare IPv6 address has no port
    ],
)
def test_split_host_port(text: str, expected: tuple[str, str | None]) -> None:
    assert split_host_port(text) == expected


def test_something_after_a_bracketed_host_other_than_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="host or host:port"):
        split_host_port("[::1]x")


def test_join_host_port_brackets_ipv6_only() -> None:
    assert join_host_port("::1", 53) == "[::1]:53"
    assert join_host_port("127.0.0.1", "53") == "127.0.0.1:53"


def test_addresses() -> None:
    assert is_ip("192.0.2.1")
    assert is_ip("2001:db8::1")
    assert not is_ip("mail.contoso.test")
    assert str(unmapped("::ffff:192.0.2.1")) == "192.0.2.1"
    assert str(unmapped("2001:db8::1")) == "2001:db8::1"
    assert family_of("::1") == socket.AF_INET6
    assert family_of("127.0.0.1") == socket.AF_INET


@pytest.mark.parametrize(
    ("value", "expected"), [("127.0.0.1:8025", ("127.0.0.1", 8025)), ("[::1]:8025", ("::1", 8025))]
)
def test_listen_takes_host_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("8025", "expected HOST:PORT"),
        (":8025", "expected HOST:PORT"),
        ("localhost:", "expected HOST:PORT"),
        ("localhost:70000", "expected HOST:PORT"),
        ("[::1]", "expected HOST:PORT"),
        ("::1:8025", "in brackets"),
    ],
)
def test_listen_refuses_what_is_not_host_port(value: str, words: str) -> None:
    with pytest.raises(ListenError, match=words):
        parse_listen(value)
