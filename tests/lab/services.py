"""The lab: real mail software on loopback, started and stopped by PID.

```
fleet --SOCKS5--> microsocks 127.0.0.1:P1 -b 127.0.0.20 (XBL-listed) --+
      --SOCKS5--> microsocks 127.0.0.1:P2 -b 127.0.0.21 (PBL-listed) --+--> Postfix lab-mx.test
      --SOCKS5--> microsocks 127.0.0.1:P3 -b 127.0.0.30 (clean)      --+    = 127.0.0.1:SMTP
                                                                            (STARTTLS, RBL at RCPT)
Postfix --LMTP 127.0.0.1:LMTP--> Dovecot (Sieve: SPF failures into Junk) <--IMAPS 127.0.0.1:IMAP-- fleet
(the SPF policy service, Debian's policyd-spf, stamps Authentication-Results in Postfix)
dnsmasq DNS_ADDRESS:53: the lab's resolver, for Postfix, microsocks and fleet. It answers
lab-mx.test, the MX and SPF of contoso.test and the sites' reverse names itself, forwards
zen.lab.test to rbldnsd 127.0.0.1:RBL, and refuses everything else.
```

`make lab-up` (tests/lab/__main__.py) and the lab tests' fixtures both use `Lab`. Everything
lives in one run folder: configuration, logs, PID files, the CA and the inventory. The only
system file touched is /etc/postfix/main.cf (see system.py). Postfix and microsocks resolve
names through the lab's resolv.conf, bind-mounted over /etc/resolv.conf in a private mount
namespace of their own: the machine's resolver is never changed.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dnslib

from fleet.lab.certs import LabCertificates
from tests.inventory_builder import InventoryBuilder
from tests.lab import processes, system
from tests.lab.processes import Tracked

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
DEFAULT_RUN_DIR = HERE / "run"

ZONE = "zen.lab.test"
MX_NAME = "lab-mx.test"
EHLO_NAME = "scanner-host.msp.test"
RECIPIENT_DOMAIN = "contoso.test"
RECIPIENT = f"frontdesk@{RECIPIENT_DOMAIN}"
# The one mailbox Postfix delivers into (Dovecot), and a recipient it accepts, then drops.
MAILBOX = f"scans@{RECIPIENT_DOMAIN}"
DROPPED = f"dropped@{RECIPIENT_DOMAIN}"
# A sender domain whose SPF names only fabrikam's egress (127.0.0.30): the other sites fail.
SPF_DOMAIN = "fabrikam.test"
# Addresses tried for dnsmasq, in order: not .53/.54, which systemd-resolved may own.
DNS_ADDRESSES = tuple(f"127.0.{n}.153" for n in range(16))

# Debian package of every program the lab runs.
PACKAGES = {
    "postfix": "postfix",
    "rbldnsd": "rbldnsd",
    "dnsmasq": "dnsmasq-base",
    "microsocks": "microsocks",
    "unshare": "util-linux",
    "dovecot": "dovecot-core",
    "/usr/lib/dovecot/imap": "dovecot-imapd",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
    "sievec": "dovecot-sieve",
    "policyd-spf": "postfix-policyd-spf-python",
}


@dataclass(frozen=True)
class LabSite:
    id: str
    client: str
    name: str
    egress_ip: str
    listing: str  # what the blocklist says about the egress IP, for people


SITES = (
    LabSite(
        "contoso-hq", "Contoso Dental", "Contoso HQ", "127.0.0.20",
        "listed as an exploited host (XBL, 127.0.0.4): Postfix rejects it at RCPT TO",
    ),
    LabSite(
        "contoso-branch", "Contoso Dental", "Contoso Branch", "127.0.0.21",
        "listed as a dynamic range (PBL, 127.0.0.10): Postfix accepts it",
    ),
    LabSite(
        "fabrikam", "Fabrikam Health", "Fabrikam clinic", "127.0.0.30",
        "not listed: Postfix accepts it",
    ),
)  # fmt: skip


class LabError(Exception):
    """The lab could not start: what failed, with the relevant log lines."""


@dataclass
class Ports:
    smtp: int
    rbldnsd: int
    dns_address: str
    socks: dict[str, int]  # site id -> microsocks port
    imap: int = 0  # Dovecot's IMAPS
    lmtp: int = 0  # Dovecot's LMTP, for Postfix
    # the token endpoint Dovecot's oauth2 passdb asks (fleet.lab.oauth.LabTokenEndpoint,
    # started by the tests that need it on this port: nothing listens there otherwise)
    oauth: int = 0

    @classmethod
    def fixed(cls) -> Ports:
        """Memorable ports for `make lab-up`."""
        return cls(
            2525,
            5354,
            free_dns_address(),
            {s.id: 1081 + i for i, s in enumerate(SITES)},
            1993,
            2424,
            2443,
        )

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody uses now, and a dnsmasq address of its own (test sessions may overlap)."""
        return cls(
            free_port(socket.SOCK_STREAM),
            free_port(socket.SOCK_DGRAM),
            free_dns_address(),
            {s.id: free_port(socket.SOCK_STREAM) for s in SITES},
            free_port(socket.SOCK_STREAM),
            free_port(socket.SOCK_STREAM),
            free_port(socket.SOCK_STREAM),
        )


@dataclass
class Lab:
    run_dir: Path
    ports: Ports
    processes: list[Tracked] = field(default_factory=list)
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- where things are -------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "postfix" / "etc"

    @property
    def ca_file(self) -> Path:
        return self.run_dir / "tls" / "lab-ca.pem"

    @property
    def inventory(self) -> Path:
        return self.run_dir / "inventory.yaml"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"

    @property
    def resolv_conf(self) -> Path:
        return self.run_dir / "resolv.conf"

    @property
    def oauth_chain_file(self) -> Path:
        """The token endpoint's key and certificate chain (PEM), signed by the lab CA."""
        return self.run_dir / "tls" / "lab-oauth.pem"

    @property
    def oauth_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.oauth}"

    @property
    def mailbox_password_file(self) -> Path:
        """The IMAP password of MAILBOX (made up at each start, readable by root only)."""
        return self.run_dir / "mailbox-password"

    def socks_url(self, site: LabSite) -> str:
        return f"socks5://127.0.0.1:{self.ports.socks[site.id]}"

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> None:
        """Start everything; on any failure, stop what started and raise LabError."""
        binaries = find_binaries()
        self._prepare_run_dir()
        try:
            self._write_certificates()
            self._start_rbldnsd(binaries["rbldnsd"])
            self._start_dnsmasq(binaries["dnsmasq"])
            self._start_dovecot(binaries["dovecot"], binaries["sievec"])
            self._start_postfix(binaries["postfix"], binaries["unshare"], binaries["policyd-spf"])
            for site in SITES:
                self._start_microsocks(binaries["microsocks"], binaries["unshare"], site)
            self.inventory.write_text(inventory_yaml(self), encoding="utf-8")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[Tracked]:
        """Stop every process by PID (newest first) and restore /etc/postfix/main.cf;
        returns what it stopped."""
        stopped = list(reversed(self.processes))
        for process in stopped:
            processes.stop(process, reap=self._children.pop(process.pid, None))
        system.disallow_config_directory(self.config_dir)
        self.processes = []
        (self.run_dir / "state.json").unlink(missing_ok=True)
        return stopped

    @classmethod
    def load(cls, run_dir: Path) -> Lab | None:
        """The lab recorded in `run_dir` by an earlier `start` (None: no lab there)."""
        try:
            state = json.loads((run_dir / "state.json").read_text())
        except FileNotFoundError:
            return None
        return cls(
            run_dir,
            Ports(**state["ports"]),
            [Tracked(**p) for p in state["processes"]],
        )

    # -- internals --------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        self.run_dir = self.run_dir.resolve()
        for sub in (
            "log", "tls", "zones", "postfix/etc", "postfix/queue", "postfix/data",
            "dovecot/run", "dovecot/state", "dovecot/sieve", "mail",
        ):  # fmt: skip
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        # rbldnsd and Postfix drop to their own users: every folder on the way must be
        # traversable by them.
        self.run_dir.chmod(0o755)
        for folder in (self.run_dir, *self.run_dir.parents):
            if not folder.stat().st_mode & 0o001:
                raise LabError(
                    f"{folder} is not traversable by other users (rbldns, postfix): "
                    "choose a run folder elsewhere, or chmod o+x it"
                )
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.run_dir / "postfix" / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        self._save()

    def _save(self) -> None:
        state = {"ports": asdict(self.ports), "processes": [asdict(p) for p in self.processes]}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    def _track(self, name: str, pid: int, program: str, *, session: bool = False) -> None:
        self.processes.append(Tracked(name, pid, program, session))
        self._save()

    def _spawn(
        self, name: str, command: list[str], program: str | None = None
    ) -> subprocess.Popen[bytes]:
        child = processes.start_background(name, command, self.log_dir / f"{name}.out")
        self._children[child.pid] = child
        self._track(name, child.pid, program or Path(command[0]).name)
        return child

    def _with_lab_resolver(self, unshare: str, command: list[str]) -> list[str]:
        """`command`, run in a private mount namespace whose /etc/resolv.conf is the lab's
        (the namespace lives as long as the program, and only it sees the change)."""
        script = f'mount --bind "{self.resolv_conf}" /etc/resolv.conf && exec "$0" "$@"'
        return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, *command]

    def _write_certificates(self) -> None:
        certs = LabCertificates(self.run_dir / "tls")
        server = certs.ca.issue_cert(MX_NAME, "localhost", "127.0.0.1")
        chain = self.run_dir / "tls" / "lab-mx.pem"  # key, then certificate chain
        server.private_key_and_cert_chain_pem.write_to_path(str(chain))
        chain.chmod(0o600)
        oauth = certs.ca.issue_cert("127.0.0.1", "localhost")
        oauth.private_key_and_cert_chain_pem.write_to_path(str(self.oauth_chain_file))
        self.oauth_chain_file.chmod(0o600)
        imap = certs.ca.issue_cert("lab-imap.test", "localhost", "127.0.0.1")
        imap.cert_chain_pems[0].write_to_path(str(self.run_dir / "tls" / "lab-imap.crt"))
        key = self.run_dir / "tls" / "lab-imap.key"
        imap.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)

    def _start_rbldnsd(self, binary: str) -> None:
        zone_file = self.run_dir / "zones" / ZONE
        shutil.copyfile(TEMPLATES / ZONE, zone_file)
        zone_file.chmod(0o644)
        child = self._spawn(
            "rbldnsd",
            [
                binary, "-n", "-b", f"127.0.0.1/{self.ports.rbldnsd}", "-u", _user("rbldns"),
                "-c", "5s", "-t", "60", f"{ZONE}:ip4set:{zone_file}",
            ],
        )  # fmt: skip
        self._wait_dns("rbldnsd", child, "127.0.0.1", self.ports.rbldnsd)

    def _start_dnsmasq(self, binary: str) -> None:
        spf = " ".join(f"ip4:{site.egress_ip}" for site in SITES)
        records = "\n".join(
            [
                f"host-record={MX_NAME},127.0.0.1",
                f"mx-host={RECIPIENT_DOMAIN},{MX_NAME},0",
                f'txt-record={RECIPIENT_DOMAIN},"v=spf1 {spf} -all"',
                f'txt-record={SPF_DOMAIN},"v=spf1 ip4:127.0.0.30 -all"',
                *(f"host-record={site.id}.sites.lab.test,{site.egress_ip}" for site in SITES),
            ]
        )
        conf = self.run_dir / "dnsmasq.conf"
        conf.write_text(
            render(
                "dnsmasq.conf",
                DNS_ADDRESS=self.ports.dns_address,
                DNS_USER=_user("dnsmasq"),
                ZONE=ZONE,
                RBLDNSD_PORT=str(self.ports.rbldnsd),
                HOST_RECORDS=records,
                RUN=str(self.run_dir),
            )
        )
        child = self._spawn("dnsmasq", [binary, "--keep-in-foreground", f"--conf-file={conf}"])
        self._wait_dns("dnsmasq", child, self.ports.dns_address, 53)
        self.resolv_conf.write_text(
            "# The resolver of Postfix and microsocks in the fleet lab: dnsmasq, nothing else.\n"
            f"nameserver {self.ports.dns_address}\noptions timeout:1 attempts:1\n"
        )

    def _start_dovecot(self, binary: str, sievec: str) -> None:
        """The mailbox: LMTP in, IMAPS out, a Sieve rule before delivery (compiled here, as
        root: the mail user could not save the compiled script)."""
        dovecot = self.run_dir / "dovecot"
        conf = dovecot / "dovecot.conf"
        mail_user = pwd.getpwnam("nobody")
        conf.write_text(
            render(
                "dovecot.conf",
                RUN=str(self.run_dir),
                IMAP_PORT=str(self.ports.imap),
                LMTP_PORT=str(self.ports.lmtp),
                MAIL_USER=str(mail_user.pw_uid),
                MAIL_GROUP=str(mail_user.pw_gid),
            )
        )
        oauth2 = dovecot / "oauth2.conf.ext"
        oauth2.write_text(
            render("dovecot-oauth2.conf.ext", OAUTH_URL=self.oauth_url, RUN=str(self.run_dir))
        )
        oauth2.chmod(0o644)
        password = secrets.token_urlsafe(18)
        self.mailbox_password_file.write_text(password + "\n")
        self.mailbox_password_file.chmod(0o600)
        users = dovecot / "users"
        users.write_text(f"{MAILBOX}:{{PLAIN}}{password}::::::\n")
        users.chmod(0o640)  # read by Dovecot's auth process, as user dovecot
        os.chown(users, 0, pwd.getpwnam(_user("dovecot")).pw_gid)
        os.chown(self.run_dir / "mail", mail_user.pw_uid, mail_user.pw_gid)
        script = dovecot / "sieve" / "spf-junk.sieve"
        shutil.copyfile(TEMPLATES / "spf-junk.sieve", script)
        compiled = subprocess.run(
            [sievec, "-c", str(conf), str(script)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if compiled.returncode != 0:
            raise LabError(f"sievec failed: {compiled.stderr.strip()}")
        for path in dovecot.joinpath("sieve").iterdir():
            path.chmod(0o644)
        child = self._spawn("dovecot", [binary, "-F", "-c", str(conf)])
        for name, port in (("dovecot imaps", self.ports.imap), ("dovecot lmtp", self.ports.lmtp)):
            wait_for_port(name, port, lambda: child.poll() is None)

    def _start_postfix(self, binary: str, unshare: str, policyd_spf: str) -> None:
        policy_conf = self.run_dir / "policyd-spf.conf"
        shutil.copyfile(TEMPLATES / "policyd-spf.conf", policy_conf)
        policy_conf.chmod(0o644)
        values = {
            "RUN": str(self.run_dir),
            "SMTP_PORT": str(self.ports.smtp),
            "ZONE": ZONE,
            "RECIPIENT_DOMAIN": RECIPIENT_DOMAIN,
            "RECIPIENTS": ", ".join(
                f"{name}@{RECIPIENT_DOMAIN}=ok"
                for name in ("frontdesk", "reception", "records", "scans", "dropped")
            ),
            "MAILBOX": MAILBOX,
            "LMTP_PORT": str(self.ports.lmtp),
            "POLICYD_SPF": policyd_spf,
        }
        for name in ("main.cf", "master.cf"):
            (self.config_dir / name).write_text(render(name, **values))
            system.cool_down(self.config_dir / name)
        system.allow_config_directory(self.config_dir)
        pid_file = self.run_dir / "postfix" / "queue" / "pid" / "master.pid"
        try:
            # The master (and with it the mount namespace) outlives this command. `-c` must
            # be absolute: a relative one is silently ignored.
            done = subprocess.run(
                self._with_lab_resolver(unshare, [binary, "-c", str(self.config_dir), "start"]),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            pid = processes.read_pid(pid_file)
            if pid is not None:
                self._track("postfix", pid, "master", session=True)
        if done.returncode != 0 or pid is None:
            raise LabError(
                f"postfix did not start (exit {done.returncode}): {done.stderr.strip()}\n"
                + self._log_tail("postfix.log")
            )
        wait_for_port("postfix", self.ports.smtp, lambda: processes.is_running(pid, "master"))

    def _start_microsocks(self, binary: str, unshare: str, site: LabSite) -> None:
        port = self.ports.socks[site.id]
        # The proxy resolves the mail host for its clients, as a site's proxy would with the
        # site's resolver: here, the lab's.
        command = [binary, "-i", "127.0.0.1", "-p", str(port), "-b", site.egress_ip]
        child = self._spawn(
            f"microsocks-{site.id}", self._with_lab_resolver(unshare, command), "microsocks"
        )
        wait_for_port(f"microsocks for {site.id}", port, lambda: child.poll() is None)

    def _wait_dns(self, name: str, child: subprocess.Popen[bytes], address: str, port: int) -> None:
        """Until `address:port` answers the zone's RFC 5782 test entry."""
        query = dnslib.DNSRecord.question(f"2.0.0.127.{ZONE}", "A").pack()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise LabError(
                    f"{name} exited with {child.returncode}\n" + self._log_tail(f"{name}.out")
                )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.2)
                try:
                    # Connected: "port unreachable" ends the wait at once, not after 0.2 s.
                    sock.connect((address, port))
                    sock.send(query)
                    reply = dnslib.DNSRecord.parse(sock.recv(4096))
                except OSError:
                    time.sleep(0.02)
                    continue
            if reply.header.rcode == 0 and reply.rr:
                return
            time.sleep(0.02)
        raise LabError(f"{name} on {address}:{port} does not answer for {ZONE} after 10 s")

    def _log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.log_dir / name).read_text(errors="replace")
        except FileNotFoundError:
            return f"(no {name})"
        return f"last lines of {self.log_dir / name}:\n" + "\n".join(text.splitlines()[-lines:])


def find_binaries() -> dict[str, str]:
    """Every program the lab runs, or LabError naming the Debian packages to install."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = {name: shutil.which(name, path=search) for name in PACKAGES}
    missing = sorted({PACKAGES[name] for name, path in found.items() if path is None})
    if missing:
        raise LabError(
            f"not installed: {', '.join(n for n, p in found.items() if p is None)}; "
            f"run as root: bash tests/lab/install-packages.sh (apt-get install {' '.join(missing)})"
        )
    return {name: path for name, path in found.items() if path is not None}


def render(template: str, **values: str) -> str:
    """A template from templates/ with its @NAME@ placeholders filled in."""
    text = (TEMPLATES / template).read_text()
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m[1]], text)


def inventory_yaml(lab: Lab) -> str:
    """An inventory that sweeps the lab's sites, each through its own SOCKS5 proxy."""
    defaults = {
        "dns": {"nameservers": [lab.ports.dns_address], "timeout_s": 2, "tries": 1},
        "timeouts": {"connect_s": 5, "command_s": 10, "site_s": 30},
        "concurrency": {"global": 20, "per_site": 2, "per_host": 10},
        "ehlo_name": EHLO_NAME,
    }
    blocklists = [{"zone": ZONE, "kind": "spamhaus-zen", "name": "Spamhaus ZEN (lab zone)"}]
    mx = {
        "host": MX_NAME,
        "port": lab.ports.smtp,
        "security": "starttls",
        "ca_file": str(lab.ca_file),
    }
    built = InventoryBuilder(defaults, blocklists, sections={"profiles": {"lab-mx": mx}})
    for site in SITES:
        smtp = {
            "profile": "lab-mx",
            "mode": "direct_send",
            "from": f"scanner@{RECIPIENT_DOMAIN}",
            "to": RECIPIENT,
        }
        mfp = {"id": f"mfp-{site.id}", "model": "Ricoh IM C3000", "smtp": smtp}
        egress = {"via": lab.socks_url(site), "ip": site.egress_ip}
        built.site(site.id, mfp, client=site.client, name=site.name, egress=egress)
    listings = "".join(f"\n#   {site.id}: {site.listing}" for site in SITES)
    return f"""\
# The fleet lab (tests/lab): a real Postfix, {MX_NAME} (127.0.0.1:{lab.ports.smtp}), the MX of
# {RECIPIENT_DOMAIN}, that rejects clients listed on {ZONE} (rbldnsd) at RCPT TO, and one
# microsocks proxy per site, each sending from the site's own 127.0.0.x address. The lab's
# dnsmasq ({lab.ports.dns_address}) answers every name fleet asks. Postfix never echoes
# the client's IP, so every site declares its egress.ip. Each copier is on Direct Send
# (mode: direct_send, as its port is not 25). The sites:{listings}
""" + built.yaml()


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_dns_address() -> str:
    """The first of DNS_ADDRESSES where port 53 is free (UDP and TCP)."""
    for address in DNS_ADDRESSES:
        if port_free(address, 53):
            return address
    raise LabError(f"port 53 is taken on every one of {', '.join(DNS_ADDRESSES)}")


def port_free(address: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def wait_for_port(name: str, port: int, running: Callable[[], bool], timeout_s: float = 10) -> None:
    """Until something accepts on 127.0.0.1:`port` (`running()` false: it died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not running():
            raise LabError(f"{name} exited before listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise LabError(f"{name}: nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _user(name: str) -> str:
    """A daemon's own user if the package created it, else nobody."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return "nobody"
    return name
