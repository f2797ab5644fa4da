"""Small pure helpers for addresses and `host:port` text (no I/O, nothing of ours)."""

from __future__ import annotations

import functools
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# The parsers below are cached: ipaddress parses in Python (5-8 us an address, more for a
# name, which it rejects with two exceptions), and a sweep asks again about the same host
# names and site IPs for each check (measured: is_ip of a host name 15 us, cached 0.1).


@functools.lru_cache(maxsize=4096)
def is_ip(text: str) -> bool:
    """Is the text an IPv4 or IPv6 address (not a name)?"""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def unmapped(ip: str) -> IPAddress:
    """The address; an IPv4 client seen through an IPv6 socket (::ffff:192.0.2.1) as the
    IPv4 address it is. Raises ValueError for what is not an IP address."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Networks only the site's own side of a NAT sees (RFC 1918 private, RFC 6598 shared (CGNAT),
# link-local, RFC 4193 unique local): an address from them, echoed by a server, is how an
# on-site relay or the ISP's NAT saw the client, never the public IP receivers see.
# (ipaddress's is_private/is_global would also catch the documentation ranges, 203.0.113.0/24
# and the like, which examples and tests use as public addresses.)
_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


@functools.lru_cache(maxsize=4096)
def on_local_network(ip: str) -> bool:
    """Is the address (IPv4-mapped or not) one of a private, shared or link-local network?
    False for what is not an IP address."""
    try:
        address = unmapped(ip)
    except ValueError:
        return False
    return any(address in network for network in _LOCAL_NETWORKS)


@functools.lru_cache(maxsize=4096)
def family_of(address: str) -> socket.AddressFamily:
    """The socket family an address literal needs."""
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def split_host_port(text: str) -> tuple[str, str | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` as (host, port or None), brackets removed.
    A bare IPv6 address (more than one colon, no brackets) is a host without a port.
    Raises ValueError when something other than `:port` follows a bracketed host."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"must be a host or host:port, got '{text}'")
        return host, (rest[1:] if rest else None)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


def join_host_port(address: str, port: str | int) -> str:
    """An address and a port as one text, IPv6 in brackets (`[::1]:53`)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
