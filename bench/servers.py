"""The benchmark's load lab, run as separate processes so the scanner's own CPU can be
measured apart: Microsoft 365-like SMTP endpoints that wait before every reply (a WAN
round trip), and a blocklist DNS server.

    python -m bench.servers smtp --role mx|submission --delay 0.025 --dirty IP,IP --folder D --ready FILE
    python -m bench.servers dns --zone Z --dirty IP,IP --ready FILE [--clients N]
        [--lose SHARE] [--answer-delay S]

Each writes a JSON line with its ports to FILE when it is listening, then serves until
SIGTERM. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from bench import responder
from bench.generate import BASE, client_domain
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns


async def serve_smtp(args: argparse.Namespace) -> None:
    certs = LabCertificates(Path(args.folder))
    context = certs.server_context("localhost", "127.0.0.1")
    stats = {"connections": 0}
    server = await responder.serve(
        delay=args.delay,
        context=context,
        submission=args.role == "submission",
        banned=set(filter(None, args.dirty.split(","))),
        stats=stats,
    )
    port = server.sockets[0].getsockname()[1]
    _write(args.ready, {"port": port, "ca_file": str(certs.ca_file)})
    await _until_terminated()
    server.close()
    Path(args.ready).with_suffix(".stats").write_text(json.dumps(stats))


async def serve_dns(args: argparse.Namespace) -> None:
    dns = LabDns()
    await dns.start()
    listed: dict[str, tuple[str, ...]] = dict.fromkeys(
        filter(None, args.dirty.split(",")), ("127.0.0.4",)
    )
    dns.blocklist(args.zone, listed)
    for n in range(0, args.clients * 10, 10):  # the "direct" shape's client domains
        domain = client_domain(n)
        dns.add(domain, "MX", "0 localhost")
        dns.add(domain, "TXT", f"v=spf1 ip4:{BASE}/16 -all")
    if args.lose:
        dns.lose(args.lose, seed=20)  # a lossy path: each query dropped with this chance
    if args.answer_delay:
        dns.delay("test", args.answer_delay)  # a slow resolver: every answer late
    _write(args.ready, {"dns": dns.port})
    await _until_terminated()
    # The (ip, zone) lookups actually made: A questions in the zone, less the self-test's
    # two (127.0.0.2 and 127.0.0.1, RFC 5782); the site IPs are 127.10.x.x, never those.
    self_test = {f"2.0.0.127.{args.zone}", f"1.0.0.127.{args.zone}"}
    a_counts = [
        n
        for (name, rtype), n in dns.log.counts.items()
        if rtype == "A" and name.endswith(args.zone) and name.rstrip(".") not in self_test
    ]
    counts = {
        "queries": dns.log.total,
        "lookups": len(a_counts),  # distinct (ip, zone) names asked
        "min_per_name": min(a_counts, default=0),
        "max_per_name": max(a_counts, default=0),
        "dropped": dns.log.dropped,
        "max_in_flight": dns.log.max_in_flight,
    }
    Path(args.ready).with_suffix(".stats").write_text(json.dumps(counts))
    await dns.stop()


def _write(path: str, document: dict[str, object]) -> None:
    """Tell bench.run we listen (a small file, written before the loop serves anything)."""
    Path(path).write_text(json.dumps(document))


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    sub = parser.add_subparsers(dest="kind", required=True)
    smtp = sub.add_parser("smtp")
    smtp.add_argument("--role", choices=("mx", "submission"), required=True)
    smtp.add_argument("--delay", type=float, default=0.025)
    smtp.add_argument("--dirty", default="")
    smtp.add_argument("--folder", required=True)
    smtp.add_argument("--ready", required=True)
    dns = sub.add_parser("dns")
    dns.add_argument("--zone", required=True)
    dns.add_argument("--dirty", default="")
    dns.add_argument("--ready", required=True)
    dns.add_argument("--clients", type=int, default=0, help="client domains with MX and SPF")
    dns.add_argument("--lose", type=float, default=0.0, help="share of queries dropped")
    dns.add_argument("--answer-delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    runner = serve_smtp if args.kind == "smtp" else serve_dns
    try:
        asyncio.run(runner(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
