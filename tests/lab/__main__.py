"""`python -m tests.lab up|down` (make lab-up / make lab-down): the lab, for trying fleet
by hand against real Postfix, rbldnsd, dnsmasq and microsocks on loopback. Run as root."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from tests.lab import processes, system
from tests.lab.services import (
    DEFAULT_RUN_DIR,
    EHLO_NAME,
    MAILBOX,
    MX_NAME,
    RECIPIENT,
    SITES,
    ZONE,
    Lab,
    LabError,
    Ports,
    port_free,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=DEFAULT_RUN_DIR,
        help=f"where the lab keeps its configuration, logs and PID files (default: {DEFAULT_RUN_DIR})",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="pick unused ports instead of 2525 (Postfix), 5354 (rbldnsd), 1081-1083 (SOCKS5), "
        "1993 (IMAPS) and 2424 (LMTP)",
    )
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        if args.command == "up":
            return up(run_dir, args.free_ports)
        return down(run_dir)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


def up(run_dir: Path, free_ports: bool) -> int:
    if os.geteuid() != 0:
        raise LabError("run as root: Postfix's master and its mount namespace need it")
    running = Lab.load(run_dir)
    if running is not None:
        if any(processes.alive(p) for p in running.processes):
            raise LabError(f"a lab already runs in {run_dir}: stop it first (make lab-down)")
        running.stop()  # what is left of a lab that died
    ports = Ports.free() if free_ports else Ports.fixed()
    if not free_ports:
        _check_fixed_ports(ports)
    lab = Lab(run_dir, ports)
    lab.start()
    print(describe(lab))
    return 0


def down(run_dir: Path) -> int:
    lab = Lab.load(run_dir)
    if lab is None:
        # No record of a lab here; still make sure main.cf does not name this folder.
        system.disallow_config_directory(run_dir / "postfix" / "etc")
        print(f"no lab runs in {run_dir}")
        return 0
    stopped = lab.stop()
    left = processes.survivors(stopped)
    if left:
        print(f"lab: still running: {', '.join(left)}", file=sys.stderr)
        return 1
    print(f"lab stopped: {', '.join(p.name for p in stopped)}; /etc/postfix/main.cf restored")
    return 0


def _check_fixed_ports(ports: Ports) -> None:
    taken = [
        f"{kind} {port}"
        for kind, port, sock in [
            ("TCP", ports.smtp, socket.SOCK_STREAM),
            ("UDP", ports.rbldnsd, socket.SOCK_DGRAM),
            *[("TCP", p, socket.SOCK_STREAM) for p in ports.socks.values()],
            ("TCP", ports.imap, socket.SOCK_STREAM),
            ("TCP", ports.lmtp, socket.SOCK_STREAM),
        ]
        if not _free(port, sock)
    ]
    if taken:
        raise LabError(
            f"in use on 127.0.0.1: {', '.join(taken)}; stop what uses them, or run "
            "python -m tests.lab up --free-ports"
        )


def _free(port: int, kind: socket.SocketKind) -> bool:
    if kind == socket.SOCK_STREAM:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True
    return port_free("127.0.0.1", port)


def describe(lab: Lab) -> str:
    """What runs where, and how to point fleet and swaks at it."""
    here = Path.cwd()

    def show(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    proxies = "\n".join(
        f"  SOCKS5 127.0.0.1:{lab.ports.socks[s.id]:<5}  sends from {s.egress_ip} ({s.id}: {s.listing})"
        for s in SITES
    )
    first = SITES[0]
    return f"""\
fleet lab is up in {show(lab.run_dir)}
  Postfix MX     127.0.0.1:{lab.ports.smtp:<5}  STARTTLS (CA {show(lab.ca_file)}); rejects {ZONE} abuse listings at RCPT TO
  rbldnsd        127.0.0.1:{lab.ports.rbldnsd:<5}  zone {ZONE} from {show(lab.run_dir / "zones" / ZONE)} (re-read every 5 s)
  dnsmasq        {lab.ports.dns_address}:53   the lab's resolver: {MX_NAME}, MX and SPF of contoso.test, {ZONE}
  Dovecot        127.0.0.1:{lab.ports.imap:<5}  IMAPS mailbox {MAILBOX} (password in {show(lab.mailbox_password_file)}); LMTP 127.0.0.1:{lab.ports.lmtp} from Postfix; SPF failures go to Junk
{proxies}

Sweep the lab's sites (inventory written for you):
  .venv/bin/fleet sweep -i {show(lab.inventory)}
  .venv/bin/fleet scan {first.id} -i {show(lab.inventory)}
The same conversation with swaks, through {first.id}'s proxy:
  swaks --quit-after RCPT --tls --ehlo {EHLO_NAME} --from scanner@contoso.test --to {RECIPIENT} \\
    --pipe "ncat --proxy 127.0.0.1:{lab.ports.socks[first.id]} --proxy-type socks5 127.0.0.1 {lab.ports.smtp}"
Logs: {show(lab.log_dir)}/   Stop everything: make lab-down"""


if __name__ == "__main__":
    sys.exit(main())
