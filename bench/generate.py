"""Inventories for the benchmark: N sites x M copiers, in a realistic MSP mix.

- most sites (about 80 %) send only through one shared Microsoft 365 submission profile,
  with the site's own scanner mailbox; their copiers use one or two test recipients;
- some (about 15 %) also have Direct Send copiers to the tenant MX;
- a few (about 5 %) are Direct Send only, and 1 % of all sites have a dirty IP (listed on
  the blocklist and banned by the MX).

The "direct" shape is the most common fleet of all: one Direct Send copier per site (one
STARTTLS conversation each) to its client's MX, so every site also has its MX and SPF
checked; ten sites per client share the client's domain (its MX and SPF records).

Every site sends from its own loopback address (127.10.0.0 + n), declared as its egress IP.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

BASE = ipaddress.IPv4Address("127.10.0.0")
ZONE = "zen.bench.test"
PASSWORD_ENV = "BENCH_SCANNER_PASSWORD"  # noqa: S105 - the name of a variable


def site_ip(n: int) -> str:
    return str(BASE + n + 1)


def client_domain(n: int) -> str:
    """Site n's client's domain (ten sites per client)."""
    return f"client{n // 10}.bench.test"


SHAPES = ("direct", "mixed")


@dataclass(frozen=True)
class Mix:
    sites: int
    devices_per_site: int
    shape: str = "mixed"

    def kind(self, n: int) -> str:
        if n % 100 == 7:
            return "dirty-direct"
        if self.shape == "direct":
            return "direct"
        bucket = n % 20
        if bucket == 0:
            return "direct"
        if bucket in (1, 2, 3):
            return "mixed"
        return "submission"

    def dirty_ips(self) -> list[str]:
        return [site_ip(n) for n in range(self.sites) if self.kind(n) == "dirty-direct"]


def inventory(
    mix: Mix,
    *,
    mx_port: int,
    submission_port: int,
    mx_ca: str,
    submission_ca: str,
    nameserver: str,
    global_cap: int = 200,
    per_site: int = 2,
) -> str:
    lines = [
        "defaults:",
        f'  dns: {{nameservers: ["{nameserver}"], timeout_s: 3, tries: 2}}',
        "  timeouts: {connect_s: 10, command_s: 30, site_s: 120}",
        f"  concurrency: {{global: {global_cap}, per_site: {per_site}, per_host: {global_cap}}}",
        "  ehlo_name: scanner.msp.bench.test",
        "blocklists:",
        f"  - {{zone: {ZONE}, kind: spamhaus-zen}}",
        "profiles:",
        f'  m365-submission: {{host: 127.0.0.1, port: {submission_port}, security: starttls, ca_file: "{submission_ca}"}}',
        f'  m365-direct-send: {{host: 127.0.0.1, port: {mx_port}, security: starttls, ca_file: "{mx_ca}", mode: direct_send}}',
        # The client's MX as its DNS names it (the MX check compares the copier's host with it).
        f'  client-mx: {{host: localhost, port: {mx_port}, security: starttls, ca_file: "{mx_ca}", mode: direct_send}}',
        "sites:",
    ]
    for n in range(mix.sites):
        kind = mix.kind(n)
        ip = site_ip(n)
        lines += [
            f"  - id: site-{n}",
            f"    client: Client {n // 10}",
            f"    egress: {{bind: {ip}, ip: {ip}}}",
            "    devices:",
        ]
        if mix.shape == "direct":
            domain = client_domain(n)
            smtp = f"{{profile: client-mx, from: copier@{domain}, to: scans@{domain}}}"
            lines += ["      - id: mfp-0", f"        smtp: {smtp}"]
            continue
        for d in range(mix.devices_per_site):
            direct = kind in ("direct", "dirty-direct") or (kind == "mixed" and d >= 3)
            if direct:
                smtp = f"{{profile: m365-direct-send, from: copier@site{n}.bench.test, to: office@bench.test}}"
            else:
                recipient = "scans" if d % 2 == 0 else "frontdesk"
                smtp = (
                    f"{{profile: m365-submission, auth: {{username: scanner@site{n}.bench.test, "
                    f"password_env: {PASSWORD_ENV}, mechanism: login}}, from: scanner@site{n}.bench.test, "
                    f"to: {recipient}@site{n}.bench.test}}"
                )
            lines += [f"      - id: mfp-{d}", f"        smtp: {smtp}"]
    return "\n".join(lines) + "\n"
