"""Secret hygiene, end to end: a canary password and a canary Spamhaus DQS key go through
full sweeps of the real command line (a child process, `--debug` and `--log-file`), with
every failure that could make a secret travel back: a wrong password, servers that echo the
AUTH line (PLAIN and LOGIN) in their 535, a server that hangs up on AUTH, a DQS listing,
and a DQS zone that fails its self-test.

Then every byte fleet wrote is read: stdout and stderr of every command, the JSON and CSV
files, the log file, the SQLite store (the .db file and its -wal and -shm files) and what
`fleet report`, `history`, `diff` and `scan` print. The canaries appear in none of them, in
any form they travel in (as written, base64 as in AUTH LOGIN, base64 of the AUTH PLAIN
string, and the DQS key in lower case, as DNS names are compared).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.dns import Dns
from fleet.inventory import BlocklistZone
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import Mailbox
from fleet.plan import zones_from_inventory
from fleet.probes.dnsbl import BlocklistProbe
from fleet.probes.dnsbl_zones import DQS_ZONE, reverse_name
from fleet.results import BlocklistStatus

from .conftest import M365Lab, Run, fleet_env, run_fleet_async
from .hostile import HostileServer
from .inventory_builder import InventoryBuilder, device, lab_defaults

PASSWORD_ENV = "FLEET_CANARY_PASSWORD"
DQS_ENV = "FLEET_CANARY_DQS_KEY"
BROKEN_DQS_ZONE = "broken.dq.test"
SITE_IP = "127.0.0.31"
USERS = {
    "login-ok": "scanner@contoso.test",
    "login-wrong": "frontdesk@contoso.test",
    "echo-plain": "echo-plain@contoso.test",
    "echo-login": "echo-login@contoso.test",
    "hang-up": "hang-up@contoso.test",
}


def canaries() -> tuple[str, str]:
    unique = uuid.uuid4().hex[:10]
    # Mixed case on purpose: DNS lower-cases names, and a lower-cased key is still the key.
    return f"CanaryPw-{unique}-Q7x", f"CanaryDqs{unique}Z9"


def forms(password: str, dqs_key: str) -> dict[str, str]:
    """Every form in which a canary travels or could come back."""
    found = {
        "password": password,
        "password, lower case": password.lower(),
        "password, base64 (AUTH LOGIN)": base64.b64encode(password.encode()).decode(),
        "dqs key": dqs_key,
        "dqs key, lower case": dqs_key.lower(),
        "dqs key, upper case": dqs_key.upper(),
    }
    for user in USERS.values():
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        found[f"AUTH PLAIN of {user}"] = plain
    return found


def site(
    inventory: InventoryBuilder, site_id: str, port: int, ca_file: str, mechanism: str | None = None
) -> None:
    """A site whose copier logs in as its own user with the canary password (from env)."""
    login = {"username": USERS[site_id], "password_env": PASSWORD_ENV}
    if mechanism:
        login["mechanism"] = mechanism
    copier = device(
        port,
        ca_file,
        host="localhost",
        mail_from=USERS[site_id],
        to="alice@contoso.test",
        auth=login,
    )
    inventory.site(site_id, copier, client="Canary", egress={"bind": SITE_IP, "ip": SITE_IP})


@pytest.mark.slow  # several seconds
async def test_canary_secrets_appear_in_no_output_log_or_store(
    m365: M365Lab,
    lab_dns: LabDns,
    certs: LabCertificates,
    tmp_path: Path,
    write_inventory: Callable[..., Path],
) -> None:
    password, dqs_key = canaries()
    secret_forms = forms(password, dqs_key)

    # Given: Microsoft 365 knows the canary for one mailbox, and another password for another
    m365.tenant.mailboxes[USERS["login-ok"]] = Mailbox(password=password)
    m365.tenant.mailboxes[USERS["login-wrong"]] = Mailbox(password="not-the-canary")
    # ... a careless server that repeats every AUTH line, and one that hangs up on AUTH
    echo = HostileServer("echo_auth_line", certs)
    hang_up = HostileServer("close_after_auth", certs)
    await echo.start()
    await hang_up.start()
    # ... Spamhaus DQS under the key: the site's IP is listed; a second DQS zone fails its
    # self-test
    dqs_zone = f"{dqs_key}.{DQS_ZONE}"
    lab_dns.blocklist(dqs_zone)
    query_name = f"{reverse_name(SITE_IP)}.{dqs_zone}"
    lab_dns.list_ip(dqs_zone, SITE_IP, "127.0.0.4", reason="https://check.spamhaus.org/$")
    lab_dns.fault(f"{dqs_key}.{BROKEN_DQS_ZONE}", "servfail")
    built = InventoryBuilder(
        defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=30),
        blocklists=[
            {"kind": "spamhaus-dqs", "key_env": DQS_ENV},
            {"kind": "spamhaus-dqs", "key_env": DQS_ENV, "zone": BROKEN_DQS_ZONE},
        ],
    )
    site(built, "login-ok", m365.submission.port, m365.ca_file)
    site(built, "login-wrong", m365.submission.port, m365.ca_file)
    site(built, "echo-plain", echo.port, str(certs.ca_file), "plain")
    site(built, "echo-login", echo.port, str(certs.ca_file), "login")
    site(built, "hang-up", hang_up.port, str(certs.ca_file))
    inventory = write_inventory(built.yaml())
    db = tmp_path / "store" / "fleet.db"
    log_file = tmp_path / "fleet.log"
    inventory_cache = tmp_path / "inventory-cache"  # the validated inventory, kept (checked below)
    env = fleet_env(
        **{PASSWORD_ENV: password, DQS_ENV: dqs_key, "FLEET_INVENTORY_CACHE": str(inventory_cache)}
    )

    async def fleet(*args: str) -> Run:
        return await run_fleet_async(
            "--debug", "--log-file", str(log_file), *args, env=env, cwd=tmp_path
        )

    # When the sweep runs three times (JSON, CSV and table), and the stored sweeps are
    # re-rendered, listed, compared and one site rescanned
    try:
        sweep = ["sweep", "-i", str(inventory), "--db", str(db), "-q"]
        runs = [
            await fleet(*sweep, "--format", "json", "--output", str(tmp_path / "out.json")),
            await fleet(*sweep, "--format", "csv", "--output", str(tmp_path / "out.csv")),
            await fleet(*sweep, "--format", "table", "--detail"),
        ]
        for report_format in ("json", "csv", "table"):
            runs.append(await fleet("report", "--last", "--db", str(db), "--format", report_format))
        runs.append(await fleet("report", "--last", "--db", str(db), "--detail"))
        runs.append(await fleet("history", "--db", str(db)))
        runs.append(await fleet("diff", "--db", str(db)))
        runs.append(await fleet("scan", "echo-plain", "-i", str(inventory), "--db", str(db)))
    finally:
        await echo.stop()
        await hang_up.stop()

    # Then the sweeps ran, failed where they should, and did use the canaries
    assert [r.code for r in runs[:3]] == [2, 2, 2], runs[0].stderr
    assert all(r.code in (0, 1, 2, 3) for r in runs)
    assert "Traceback" not in "".join(r.stderr for r in runs)
    assert m365.submission.stats.auth_attempts >= 2
    echoed = b"".join(echo.lines).decode()
    assert base64.b64encode(f"\0{USERS['echo-plain']}\0{password}".encode()).decode() in echoed
    assert base64.b64encode(password.encode()).decode() in echoed  # AUTH LOGIN's second line
    assert b"AUTH" in b"".join(hang_up.lines)
    asked = lab_dns.log.names()
    assert query_name.lower() in asked  # the key went into the query names
    assert any(n.endswith(f"{dqs_key.lower()}.{BROKEN_DQS_ZONE}") for n in asked)
    logged = log_file.read_text(encoding="utf-8")
    assert "DEBUG" in logged  # --debug was on, and the log file has it
    out_json = (tmp_path / "out.json").read_text(encoding="utf-8")
    out_csv = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    for words in ("auth_failed", '"listed"', "self-test failed", "Authentication failed for"):
        assert words in out_json
    assert "****" in out_json  # the echoed AUTH lines are kept, with the secret blanked

    # ... and no canary, in any form, is in anything fleet wrote
    texts = {"log file": logged, "out.json": out_json, "out.csv": out_csv}
    for i, run in enumerate(runs):
        texts[f"stdout of run {i}"] = run.stdout
        texts[f"stderr of run {i}"] = run.stderr
    store_files = sorted(db.parent.glob(db.name + "*"))
    assert db in store_files
    cached = sorted(p for p in inventory_cache.rglob("*") if p.is_file())
    assert cached  # the sweeps after the first read the inventory from it
    store_files += cached
    leaks = [
        (where, form)
        for where, text in texts.items()
        for form, value in secret_forms.items()
        if value in text
    ]
    leaks += [
        (path.name, form)
        for path in store_files
        for form, value in secret_forms.items()
        if value.encode() in path.read_bytes() or value.encode("utf-16-le") in path.read_bytes()
    ]
    assert leaks == [], leaks


async def test_a_txt_record_that_repeats_the_query_name_does_not_leak_the_dqs_key(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, dqs_key = canaries()
    monkeypatch.setenv(DQS_ENV, dqs_key)
    dqs_zone = f"{dqs_key}.{DQS_ZONE}"
    lab_dns.blocklist(dqs_zone)
    query_name = f"{reverse_name(SITE_IP)}.{dqs_zone}"
    lab_dns.list_ip(dqs_zone, SITE_IP, "127.0.0.4", reason=f"listed: {query_name}")
    (zone,) = zones_from_inventory([BlocklistZone(kind="spamhaus-dqs", key_env=DQS_ENV)])
    dns = Dns([lab_dns.nameserver], timeout_s=1, tries=1)
    try:
        result = await BlocklistProbe(dns, [zone]).lookup(SITE_IP, zone)
    finally:
        await dns.close()

    assert result.status is BlocklistStatus.listed
    assert dqs_key.lower() not in result.model_dump_json().lower()


# ---- echoes in every shape: malformed, multi-line, truncated, another site's, other case ----

ECHO_PASSWORD_ENV = "FLEET_ECHO_PASSWORD"
ECHO_SITES = {  # site -> (behaviour, mechanism, the address it sends from)
    "malformed-plain": ("malformed_auth_echo", "plain", "127.0.0.41"),
    "malformed-login": ("malformed_auth_echo", "login", "127.0.0.42"),
    "multiline": ("multiline_auth_echo", "plain", "127.0.0.43"),
    "truncated": ("truncated_auth_echo", "plain", "127.0.0.44"),
    "quit-echo": ("quit_echoes_auth", "plain", "127.0.0.45"),
    # no login of its own: its RCPT refusal quotes the login quit-echo sent just before
    "quoted-elsewhere": ("rcpt_quotes_another_login", None, "127.0.0.46"),
}


def windows(value: str, size: int) -> set[str]:
    """Every piece of `size` characters of a value (the whole value when it is shorter)."""
    size = min(size, len(value))
    return {value[i : i + size] for i in range(len(value) - size + 1)}


# What a reader strips to put a wrapped echo back together: line breaks (real, or escaped in
# JSON), spaces, and the reply code and enhanced code that start each line of a reply.
_WRAP = re.compile(r"(?:\\[rn]|\s)+(?:\d{3}[ -])?(?:[245]\.\d{1,3}\.\d{1,3})?")


def run_together(text: str) -> str:
    """The text with a reply's lines run together, as a reader would to rebuild a credential
    a server wrapped over several lines (each piece alone is too short to tell)."""
    return _WRAP.sub("", text)


def leaked_pieces(text: str, password: str, users: list[str], dqs_key: str) -> list[str]:
    """Which forms of the secrets a text gives away, whole or in pieces: half of the password
    or key as written (in any case), eight characters of any base64 form, also once the
    lines of a reply are run together."""
    found = []
    lower = text.lower()
    for name, value in (("password", password), ("dqs key", dqs_key)):
        if any(piece.lower() in lower for piece in windows(value, -(-len(value) // 2))):
            found.append(name)
    encoded = {"base64 password": base64.b64encode(password.encode()).decode()}
    for user in users:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        # from the first base64 group that holds a byte of the password: the part before
        # only encodes the username, which is no secret
        encoded[f"AUTH PLAIN of {user}"] = blob[(len(user.encode()) + 2) // 3 * 4 :]
    joined = run_together(text)
    for name, value in encoded.items():
        if any(piece in text or piece in joined for piece in windows(value, 8)):
            found.append(name)
    return found


async def test_credentials_echoed_in_any_shape_leak_into_no_output(
    lab_dns: LabDns,
    certs: LabCertificates,
    tmp_path: Path,
    write_inventory: Callable[..., Path],
) -> None:
    """Issue 17, items 1-4: malformed replies (to AUTH PLAIN, AUTH LOGIN and QUIT) quoting
    the credential, a base64 credential wrapped over a multi-line reply or cut short, a
    server quoting another site's AUTH line, and a TXT record repeating the DQS query name
    in another letter case. Checked in the table, CSV, JSON, the store, `fleet scan`,
    stderr, the log file and the alert's CSV attachment."""
    from fleet.lab.smtp import LabSmtpServer

    from .hostile import HostileServer as Hostile
    from .test_notify import Relay

    password, dqs_key = canaries()
    users = [f"{site_id}@contoso.test" for site_id in ECHO_SITES]
    # Given one hostile server playing a behaviour per site (by the client's address) ...
    by_address = {ip: behaviour for behaviour, _, ip in ECHO_SITES.values()}
    server = Hostile(by_address.__getitem__, certs)
    port = await server.start()
    # ... a DQS zone listing the last site, whose TXT repeats the query name in swapped case
    dqs_zone = f"{dqs_key}.{DQS_ZONE}"
    lab_dns.blocklist(dqs_zone)
    listed_ip = ECHO_SITES["quoted-elsewhere"][2]
    query_name = f"{reverse_name(listed_ip)}.{dqs_zone}"
    lab_dns.list_ip(dqs_zone, listed_ip, "127.0.0.4", reason=f"see {query_name.swapcase()}")
    # ... and the MSP's relay, which receives the alert with its CSV
    relay = Relay()
    relay_server = LabSmtpServer(
        relay, hostname="relay.msp.test", tls_context=certs.server_context()
    )
    await relay_server.start()
    defaults = lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=30)
    # the sites in order: quit-echo logs in before quoted-elsewhere
    defaults["concurrency"] = {"global": 1}
    built = InventoryBuilder(
        defaults=defaults,
        blocklists=[{"kind": "spamhaus-dqs", "key_env": DQS_ENV}],
        sections={
            "notifications": {
                "when": "always",
                "email": {
                    "host": "127.0.0.1",
                    "port": relay_server.port,
                    "security": "starttls",
                    "ca_file": str(certs.ca_file),
                    "from": "fleet@msp.test",
                    "to": ["noc@msp.test"],
                    "attach_csv": True,
                },
            }
        },
    )
    for site_id, (_, mechanism, ip) in ECHO_SITES.items():
        if mechanism:
            login = {
                "username": f"{site_id}@contoso.test",
                "password_env": ECHO_PASSWORD_ENV,
                "mechanism": mechanism,
            }
            copier = device(port, str(certs.ca_file), to="alice@contoso.test", auth=login)
        else:
            copier = device(port, security="none", to="alice@contoso.test")
        built.site(site_id, copier, client="Echo", egress={"bind": ip, "ip": ip})
    inventory = write_inventory(built.yaml())
    db = tmp_path / "fleet.db"
    log_file = tmp_path / "fleet.log"
    env = fleet_env(**{ECHO_PASSWORD_ENV: password, DQS_ENV: dqs_key})

    async def fleet(*args: str) -> Run:
        return await run_fleet_async(
            "--debug", "--log-file", str(log_file), *args, env=env, cwd=tmp_path
        )

    # When it is swept in every format (with the alert), and sites are rescanned
    sweep = ["sweep", "-i", str(inventory), "--db", str(db), "-q", "--notify"]
    try:
        runs = [
            await fleet(*sweep, "--format", "json", "--output", str(tmp_path / "out.json")),
            await fleet(*sweep, "--format", "csv", "--output", str(tmp_path / "out.csv")),
            await fleet(*sweep, "--format", "table", "--detail"),
            await fleet("report", "--last", "--db", str(db), "--format", "json"),
            await fleet("scan", "malformed-plain", "-i", str(inventory), "--db", str(db)),
            await fleet("scan", "quit-echo", "-i", str(inventory), "--db", str(db)),
        ]
    finally:
        await server.stop()
        await relay_server.stop()

    # Then the servers did echo the credentials, and the sweeps said what happened
    heard = b"".join(server.lines).decode()
    assert base64.b64encode(f"\0{users[0]}\0{password}".encode()).decode() in heard
    assert base64.b64encode(password.encode()).decode() in heard  # AUTH LOGIN's password
    assert [r.code for r in runs[:3]] == [2, 2, 2], runs[0].stderr
    assert "Traceback" not in "".join(r.stderr for r in runs)
    out_json = (tmp_path / "out.json").read_text(encoding="utf-8")
    for words in ("malformed", "Relaying denied; last session said", "****", '"listed"'):
        assert words in out_json
    assert len(relay.messages) == 3
    # ... and no form of any secret, whole or in pieces, is in anything fleet wrote
    texts = {
        "log file": log_file.read_text(encoding="utf-8"),
        "out.json": out_json,
        "out.csv": (tmp_path / "out.csv").read_text(encoding="utf-8-sig"),
    }
    for i, run in enumerate(runs):
        texts[f"stdout of run {i}"] = run.stdout
        texts[f"stderr of run {i}"] = run.stderr
    for i, message in enumerate(relay.messages):
        texts[f"alert {i}"] = message.as_string()
        for n, part in enumerate(message.walk()):
            if not part.is_multipart():
                content = part.get_content()
                texts[f"alert {i} part {n}"] = (
                    content.decode("utf-8-sig") if isinstance(content, bytes) else content
                )
    for path in sorted(db.parent.glob(db.name + "*")):
        texts[path.name] = path.read_bytes().decode("latin-1")
    leaks = {
        where: found
        for where, t in texts.items()
        if (found := leaked_pieces(t, password, users, dqs_key))
    }
    assert leaks == {}


# ---- a short password echoed in halves, or split by invisible characters ------------------

PIECES_SITES = {  # site -> (behaviour, mechanism, the address it sends from)
    "halves-plain": ("halves_auth_echo", "plain", "127.0.0.51"),
    "halves-login": ("halves_auth_echo", "login", "127.0.0.52"),
    "invisible": ("invisible_auth_echo", "plain", "127.0.0.53"),
}


async def test_a_short_password_echoed_in_halves_or_split_by_invisible_characters_is_blanked(
    lab_dns: LabDns,
    certs: LabCertificates,
    tmp_path: Path,
    write_inventory: Callable[..., Path],
) -> None:
    """README: a secret is blanked "cut short (half of a password ...)". A password under
    sixteen characters (most copiers' are) in two halves, one per line of a 535, and one
    split by a zero-width space and a soft hyphen, over verified STARTTLS."""
    from .hostile import HostileServer as Hostile

    unique = uuid.uuid4().hex
    password = f"Cp{unique[:4]}-Pw{unique[4:8]}"  # 13 characters: halves of 6 and 7
    halves = (password[: len(password) // 2], password[len(password) // 2 :])
    by_address = {ip: behaviour for behaviour, _, ip in PIECES_SITES.values()}
    server = Hostile(by_address.__getitem__, certs)
    port = await server.start()
    built = InventoryBuilder(defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=30))
    for site_id, (_, mechanism, ip) in PIECES_SITES.items():
        login = {
            "username": f"{site_id}@contoso.test",
            "password_env": ECHO_PASSWORD_ENV,
            "mechanism": mechanism,
        }
        copier = device(port, str(certs.ca_file), to="alice@contoso.test", auth=login)
        built.site(site_id, copier, client="Pieces", egress={"bind": ip, "ip": ip})
    inventory = write_inventory(built.yaml())
    db = tmp_path / "fleet.db"
    env = fleet_env(**{ECHO_PASSWORD_ENV: password})

    async def fleet(*args: str) -> Run:
        return await run_fleet_async(*args, env=env, cwd=tmp_path)

    # When it is swept, re-rendered in every format, and a site rescanned
    try:
        runs = [await fleet("sweep", "-i", str(inventory), "--db", str(db), "-q", "--detail")]
        for report_format in ("json", "csv", "html"):
            runs.append(await fleet("report", "--last", "--db", str(db), "--format", report_format))
        runs.append(await fleet("scan", "halves-plain", "-i", str(inventory), "--db", str(db)))
        runs.append(await fleet("scan", "invisible", "-i", str(inventory), "--db", str(db)))
    finally:
        await server.stop()

    # Then the server did quote the password, and each site failed its login
    heard = b"".join(server.lines).decode()
    assert base64.b64encode(password.encode()).decode() in heard  # AUTH LOGIN's password
    assert runs[0].code == 2, runs[0].stderr
    assert "Traceback" not in "".join(r.stderr for r in runs)
    assert "h1 ****" in runs[1].stdout
    assert "bad password: ****" in runs[1].stdout
    # ... and neither half, nor the password with its invisible characters taken out, is in
    # anything fleet wrote
    texts = {f"output of run {i}": run.stdout + run.stderr for i, run in enumerate(runs)}
    for path in sorted(db.parent.glob(db.name + "*")):
        texts[path.name] = path.read_bytes().decode("utf-8", "replace")
    invisible = re.compile("[\u00ad\u200b]")
    leaks = [
        (where, piece)
        for where, text in texts.items()
        for piece in halves
        if piece.lower() in invisible.sub("", text).lower()
    ]
    assert leaks == []
