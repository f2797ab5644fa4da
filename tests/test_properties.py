"""Property-based tests: whatever a server, a resolver or an inventory file throws at them,
the SMTP reply parser and classifier, the blocklist answer interpreter and the inventory
loader never raise anything but their documented errors.

- classify (make_reply, parse_enhanced, classify_reply, classify_exception, echoed_client_ip,
  blocklist_named): never raise, and what they return is safe to store.
- the blocklist probe's interpretation of A answers (driven through BlocklistProbe with a
  Dns whose answers are chosen here: the interpreter is pure, nothing goes on the network):
  never raises, and never says `clean` unless the lookup was NXDOMAIN after a good self-test.
- the inventory loader (parse_inventory): an Inventory, or InventoryError and nothing else.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import aiosmtplib
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.classify import (
    Classification,
    Context,
    blocklist_named,
    classify_exception,
    classify_reply,
    echoed_client_ip,
    make_reply,
    parse_enhanced,
)
from fleet.dns import Answer, Dns, Outcome
from fleet.errors import InventoryError
from fleet.inventory import Inventory, parse_inventory
from fleet.probes.dnsbl import BlocklistProbe
from fleet.probes.dnsbl_zones import Zone, reverse_name
from fleet.results import BlocklistResult, BlocklistStatus, Category, Mode, Reply, Stage

from .dnsbl_helpers import zone as make_zone

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# ---- what servers send --------------------------------------------------------------------

# Text as aiosmtplib hands it over (bytes decoded with surrogateescape), plain Unicode,
# lone surrogates, and lines that look like SMTP replies with codes and IPs in them.
server_bytes = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
reply_like = st.lists(
    st.one_of(
        st.from_regex(r"[245]\.\d{1,4}\.\d{1,4}(\.\d{1,3})?[ ;,:)\]]?", fullmatch=True),
        st.sampled_from(
            [
                "Hello [",
                "]",
                "at your service, [",
                "Client host [",
                "sending IP [",
                "blocked using ",
                "spamhaus",
                "zen.spamhaus.org",
                "\n",
                "\r\n",
                " ",
                "\x00",
                "\x1b[31m",
                "{ip}",
                "{",
                "}",
                "%s",
            ]
        ),
        st.ip_addresses().map(str),
        st.text(max_size=20),
    ),
    max_size=12,
).map("".join)
server_text = st.one_of(
    st.text(max_size=300),
    server_bytes,
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Ll"]), max_size=50),
    reply_like,
)
codes = st.one_of(st.none(), st.integers(-(10**6), 10**6), st.integers(200, 599))
enhanced = st.one_of(
    st.none(),
    st.from_regex(r"[245]\.\d{1,3}\.\d{1,3}", fullmatch=True),
    st.text(max_size=12),  # a Reply read back from a store someone edited
)
stages = st.sampled_from(Stage)


def _contexts(words: st.SearchStrategy[str]) -> st.SearchStrategy[Context]:
    return st.builds(
        Context,
        mode=st.sampled_from(Mode),
        host=words,
        port=st.integers(0, 70000),
        authenticated=st.booleans(),
        ip=st.one_of(st.none(), words),
        username=st.one_of(st.none(), words),
        sender=st.one_of(st.none(), words),
        tls_max=st.one_of(st.none(), st.sampled_from(["1.0", "1.1", "1.2", "1.3"]), words),
        provider=st.one_of(st.sampled_from(["microsoft", "google", "other"]), words),
    )


contexts = _contexts(st.text(max_size=40))  # anything at all: it must not raise
# What a context really holds: names and addresses from a validated inventory (printable).
inventory_words = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=40)
inventory_contexts = _contexts(inventory_words)


def assert_storable(text: str) -> None:
    text.encode("utf-8")  # strict: no lone surrogate
    assert "\x00" not in text


@QUICK
@given(code=codes, text=server_text)
def test_make_reply_never_raises_and_is_safe_to_store(code: int | None, text: str) -> None:
    reply = make_reply(code, text)

    assert reply.code == code
    assert_storable(reply.text)
    if reply.enhanced is not None:
        assert _ENHANCED.fullmatch(reply.enhanced)
        assert re.search(rf"(^|\n){re.escape(reply.enhanced)}", reply.text)
    assert Reply.model_validate_json(reply.model_dump_json()) == reply


@QUICK
@given(text=server_text)
def test_parse_enhanced_finds_a_code_at_a_line_start_or_nothing(text: str) -> None:
    found = parse_enhanced(text)

    if found is not None:
        assert _ENHANCED.fullmatch(found)
        assert any(line.startswith(found) for line in text.splitlines() or [text])


@QUICK
@given(
    stage=stages,
    reply=st.builds(Reply, code=codes, enhanced=enhanced, text=server_text),
    context=contexts,
)
def test_classify_reply_never_raises(stage: Stage, reply: Reply, context: Context) -> None:
    decided = classify_reply(stage, reply, context)

    assert isinstance(decided, Classification)
    assert decided.category in Category
    assert decided.finding
    assert decided.remediation


@QUICK
@given(code=codes, text=server_text, stage=stages, context=inventory_contexts)
def test_a_reply_as_the_probe_makes_it_always_classifies(
    code: int | None, text: str, stage: Stage, context: Context
) -> None:
    decided = classify_reply(stage, make_reply(code, text), context)

    assert decided.category in Category
    assert_storable(decided.finding)
    assert_storable(decided.remediation)


@QUICK
@given(text=server_text)
def test_echoed_client_ip_is_an_ip_or_nothing(text: str) -> None:
    ip = echoed_client_ip(text)

    if ip is not None:
        assert str(ipaddress.ip_address(ip)) == ip


@QUICK
@given(text=server_text)
def test_blocklist_named_is_a_name_or_nothing(text: str) -> None:
    named = blocklist_named(text)

    assert named is None or (isinstance(named, str) and named)


def _exceptions() -> st.SearchStrategy[BaseException]:
    message = server_text
    return st.one_of(
        st.builds(aiosmtplib.SMTPResponseException, codes.map(lambda c: c or 0), message),
        st.builds(aiosmtplib.SMTPConnectResponseError, st.integers(-1, 999), message),
        st.builds(aiosmtplib.SMTPServerDisconnected, message),
        st.builds(aiosmtplib.SMTPReadTimeoutError, message),
        st.builds(aiosmtplib.SMTPConnectTimeoutError, message),
        st.builds(aiosmtplib.SMTPConnectError, message),
        st.builds(
            OSError, st.sampled_from([0, errno.ECONNRESET, errno.ECONNREFUSED, 999]), message
        ),
        st.builds(ConnectionResetError, message),
        st.builds(ssl.SSLError, st.integers(0, 10), message),
        st.builds(ssl.SSLCertVerificationError, st.integers(0, 10), message),
        st.builds(TimeoutError, message),
        st.builds(ValueError, message),
        st.builds(RuntimeError, message),
        st.builds(
            UnicodeDecodeError, st.just("utf-8"), st.binary(), st.just(0), st.just(1), message
        ),
    )


@QUICK
@given(stage=stages, exc=_exceptions(), cause=st.one_of(st.none(), _exceptions()))
def test_classify_exception_never_raises(
    stage: Stage, exc: BaseException, cause: BaseException | None
) -> None:
    exc.__cause__ = cause
    fault = classify_exception(stage, exc)

    assert fault.category in Category
    assert_storable(fault.detail)
    if fault.reply is not None:
        assert_storable(fault.reply.text)
    else:
        assert fault.detail


# ---- what blocklists answer ---------------------------------------------------------------


class ScriptedDns(Dns):
    """A Dns whose answers are chosen by the test: the interpreter is pure, so no resolver
    and no network are needed to feed it every answer there could be."""

    def __init__(self, answer: Callable[[str, str], Answer]) -> None:  # no resolver at all
        self.nameservers = ["scripted"]
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def query(self, name: str, rtype: str, *, shown: str | None = None) -> Answer:
        self.asked.append((name, rtype))
        return self.answer(name, rtype)

    async def close(self) -> None:
        pass


record = st.one_of(
    st.ip_addresses(v=4, network="127.0.0.0/24").map(str),
    st.sampled_from(
        ["127.0.0.1", "127.0.0.2", "127.0.0.10", "127.0.1.255", "127.255.255.254", "0.0.0.0"]
    ),
    st.ip_addresses(v=4, network="127.0.0.0/8").map(str),
    st.ip_addresses().map(str),
    st.text(max_size=20),
)
# fleet.dns's contract: an `answer` carries at least one record (no record is `nodata`).
answers = st.one_of(
    st.builds(
        Answer,
        outcome=st.just(Outcome.answer),
        records=st.lists(record, min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        Answer,
        outcome=st.sampled_from([o for o in Outcome if o is not Outcome.answer]),
        records=st.lists(record, max_size=2).map(tuple),
        detail=st.text(max_size=40),
    ),
)
DQS_KEY_ENV = "FLEET_PROPERTY_DQS_KEY"
DQS_KEY = "propertydqskey0123456789"


@pytest.fixture(scope="module", autouse=True)
def dqs_key() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DQS_KEY_ENV, DQS_KEY)
        yield


def _zones() -> list[Zone]:
    return [
        make_zone("zen.example.test", "spamhaus-zen"),
        make_zone(None, "spamhaus-dqs", key_env=DQS_KEY_ENV),
        make_zone("bl.spamcop.test", "spamcop"),
        make_zone("b.barracuda.test", "barracuda"),
        make_zone("any.generic.test", "generic"),
        make_zone(
            "custom.generic.test",
            "generic",
            codes={"127.0.0.5": {"list": "Custom", "meaning": "custom", "severity": "policy"}},
        ),
    ]


ZONES = _zones()
ips = st.one_of(st.ip_addresses().map(str), st.text(max_size=20), st.just("127.0.0.2"))


def _is_listing_code(code: str, zone: Zone) -> bool:
    address = ipaddress.ip_address(code)
    if address.version != 4 or address not in ipaddress.ip_network("127.0.0.0/8"):
        return False
    if code == "127.0.0.1" or address in ipaddress.ip_network("127.255.255.0/24"):
        return False
    return not zone.spamhaus or address in ipaddress.ip_network("127.0.0.0/24")


@QUICK
@given(
    zone=st.sampled_from(ZONES),
    ip=ips,
    positive=answers,
    negative=answers,
    lookup=answers,
    txt=answers,
)
def test_the_blocklist_interpreter_never_raises_and_never_guesses_clean(
    zone: Zone, ip: str, positive: Answer, negative: Answer, lookup: Answer, txt: Answer
) -> None:
    suffix = f"{DQS_KEY}.{zone.display}" if zone.key is not None else zone.display

    def answer(name: str, rtype: str) -> Answer:
        if rtype == "TXT":
            return txt
        if name == f"{reverse_name('127.0.0.2')}.{suffix}":
            return positive
        if name == f"{reverse_name('127.0.0.1')}.{suffix}":
            return negative
        return lookup

    async def look_up() -> BlocklistResult:
        return await BlocklistProbe(ScriptedDns(answer), [zone]).lookup(ip, zone)

    result = asyncio.run(look_up())

    assert result.ip == ip
    assert result.zone == zone.display
    dumped = result.model_dump_json()
    assert DQS_KEY not in dumped
    assert BlocklistResult.model_validate_json(dumped) == result
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        assert result.status is BlocklistStatus.unknown
        return
    asked_about_itself = address == ipaddress.ip_address("127.0.0.2")
    if result.status is BlocklistStatus.clean:
        # Only NXDOMAIN is clean, and only from a list that passed its self-test.
        assert (positive if asked_about_itself else lookup).outcome is Outcome.nxdomain or (
            address.version == 6 and address.ipv4_mapped is not None
        )
        assert positive.outcome is Outcome.answer
        assert negative.outcome is Outcome.nxdomain
    elif result.status is BlocklistStatus.listed:
        assert result.codes
        assert all(_is_listing_code(code, zone) for code in result.codes)
        assert result.severity is not None
        assert result.lists
    else:
        assert result.status is BlocklistStatus.unknown
        assert result.detail


# ---- what inventories contain -------------------------------------------------------------

YAML_PIECES = [
    "sites:",
    "defaults:",
    "profiles:",
    "blocklists:",
    "devices:",
    "smtp:",
    "timeouts:",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "id: ",
    "port: ",
    "host: ",
    "ca_file: ",
    "password: ",
    "profile: ",
    "zone: ",
    "key_env: ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    ": ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!python/object:os.system ",
    "!!set ",
    "!!timestamp ",
    '"\\0"',
    '"a\\0b"',
    "'",
    '"',
    "2024-02-30",
    "2024-13-01 25:61:61",
    "1" * 5000,
    "0x1F",
    "0o777",
    ".inf",
    ".nan",
    "-.inf",
    "~",
    "null",
    "yes",
    "1e999",
    "#",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\t",
    "\ufeff",
    "\x00",
    "? ",
    "|\n  ",
    ">-\n  ",
]
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=8)), max_size=30).map(
        "".join
    ),
)


def _parse(text: str, folder: str) -> Inventory | None:
    try:
        return parse_inventory(text, os.path.join(folder, "inventory.yaml"))
    except InventoryError as exc:
        problems = exc.errors
    assert problems
    for problem in problems:
        assert str(problem)  # every problem can be printed
    return None


@settings(QUICK, max_examples=200)
@given(text=yaml_text)
def test_the_inventory_loader_raises_only_inventory_error_on_any_text(text: str) -> None:
    _parse(text, "/nonexistent-fleet-test")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.dates(min_value=date(1, 1, 1)),
    st.sampled_from(
        [
            "127.0.0.1",
            "localhost",
            "a@b.test",
            "starttls",
            "1.2",
            "spamhaus-dqs",
            "socks5://x:1",
            "FLEET_X",
            "ca\x00.pem",
            "~nobody/../x",
        ]
    ),
)
KEYS = [
    "sites",
    "id",
    "client",
    "name",
    "tags",
    "egress",
    "via",
    "bind",
    "ip",
    "devices",
    "smtp",
    "host",
    "port",
    "security",
    "auth",
    "username",
    "password_env",
    "password_file",
    "oauth2",
    "token_env",
    "mechanism",
    "from",
    "to",
    "tls_max",
    "tls_verify",
    "ca_file",
    "ehlo_name",
    "mode",
    "profile",
    "profiles",
    "defaults",
    "dns",
    "nameservers",
    "timeouts",
    "connect_s",
    "site_s",
    "concurrency",
    "global",
    "per_site",
    "blocklists",
    "zone",
    "kind",
    "codes",
    "key_env",
    "key_file",
    "notifications",
    "password",
    "key",
]
yaml_data: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=12,
)
SMTP_KEYS = ["host", "port", "security", "auth", "from", "to", "tls_max", "tls_verify"]
SMTP_KEYS += ["ca_file", "ehlo_name", "mode", "profile"]
smtp = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), yaml_data, max_size=8),
    st.fixed_dictionaries({}, optional=dict.fromkeys(SMTP_KEYS, scalars)),
)
device = st.fixed_dictionaries({"id": scalars, "smtp": smtp})
site = st.fixed_dictionaries(
    {"id": scalars, "client": scalars, "devices": st.lists(device, max_size=3)},
    optional={"egress": yaml_data, "timeouts": yaml_data, "name": scalars},
)
inventory_data = st.fixed_dictionaries(
    {"sites": st.lists(site, max_size=3)},
    optional={
        "defaults": yaml_data,
        "profiles": st.dictionaries(st.text(max_size=8), yaml_data, max_size=3),
        "blocklists": st.lists(yaml_data, max_size=3),
    },
)


@settings(QUICK, max_examples=100)
@given(data=st.one_of(inventory_data, yaml_data))
def test_the_inventory_loader_raises_only_inventory_error_on_any_yaml_data(data: Any) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)

    _parse(text, "/nonexistent-fleet-test")


# A valid inventory that uses every part of the schema; the property below puts arbitrary
# data in one place of it at a time, so every validator meets every kind of input.
VALID: dict[str, Any] = {
    "defaults": {
        "dns": {"nameservers": ["127.0.0.1:53"], "timeout_s": 1, "tries": 1, "concurrency": 5},
        "timeouts": {"connect_s": 1, "command_s": 1, "site_s": 5},
        "concurrency": {"global": 5, "per_site": 1, "per_host": 2},
        "ehlo_name": "scanner.example.test",
    },
    "profiles": {"m365": {"host": "localhost", "port": 587, "security": "starttls"}},
    "blocklists": [
        {
            "zone": "zen.example.test",
            "kind": "spamhaus-zen",
            "codes": {"127.0.0.2": {"list": "SBL", "meaning": "spam", "severity": "abuse"}},
        },
        {"kind": "spamhaus-dqs", "key_file": "dqs.key"},
    ],
    "notifications": {
        "when": "changes",
        "email": {"host": "relay.example.test", "from": "a@example.test", "to": ["b@example.test"]},
        "webhook": {"url_env": "HOOK", "format": "teams"},
    },
    "sites": [
        {
            "id": "hq",
            "client": "Contoso",
            "tags": ["north"],
            "egress": {"via": "socks5://127.0.0.1:1080", "ip": "127.0.0.5"},
            "timeouts": {"site_s": 10},
            "devices": [
                {
                    "id": "mfp",
                    "model": "MX-3071",
                    "smtp": {
                        "profile": "m365",
                        "from": "scanner@example.test",
                        "to": "alice@example.test",
                        "auth": {"username": "scanner@example.test", "password_file": "pw.txt"},
                        "tls_max": "1.2",
                        "ca_file": "ca.pem",
                    },
                },
                {
                    "id": "old",
                    "smtp": {
                        "host": "127.0.0.1",
                        "port": 25,
                        "security": "none",
                        "from": "scanner@example.test",
                        "to": "alice@example.test",
                        "auth": {"username": "u", "oauth2": {"token_env": "TOKEN"}},
                    },
                },
            ],
        }
    ],
}


def _paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*path, index))


PATHS = [p for p in _paths(VALID) if p]


def _replaced(path: tuple[Any, ...], value: Any) -> Any:
    data = copy.deepcopy(VALID)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def test_the_valid_inventory_is_valid() -> None:
    assert _parse(yaml.safe_dump(VALID), "/nonexistent-fleet-test") is not None


@settings(QUICK, max_examples=200)
@given(
    path=st.sampled_from(PATHS),
    value=st.one_of(yaml_data, st.text(), st.sampled_from(["", "\x00", "a\x00b", " "])),
)
def test_any_value_anywhere_in_a_valid_inventory_is_valid_or_an_inventory_error(
    path: tuple[Any, ...], value: Any
) -> None:
    _parse(yaml.safe_dump(_replaced(path, value), allow_unicode=True), "/nonexistent-fleet-test")


def test_an_answer_without_records_is_never_a_listing() -> None:
    zen = ZONES[0]

    def answer(name: str, rtype: str) -> Answer:
        if name.startswith("2.0.0.127."):
            return Answer(Outcome.answer, ("127.0.0.2",))
        if name.startswith("1.0.0.127."):
            return Answer(Outcome.nxdomain)
        return Answer(Outcome.answer, ())

    async def look_up() -> BlocklistResult:
        return await BlocklistProbe(ScriptedDns(answer), [zen]).lookup("192.0.2.1", zen)

    assert asyncio.run(look_up()).status is BlocklistStatus.unknown
