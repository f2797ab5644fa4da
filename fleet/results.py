"""The typed result model shared by probes, matrix, reports and store.

Every result is a frozen `msgspec.Struct`: plain data, built without validation (the
probes, the runner and the matrix fill them with values of the right types), encoded to
JSON by msgspec, and validated field by field when read back from outside (the store, an
agent's file, a push to `fleet serve`, a report's input). This module imports nothing of
ours so that everything else can depend on it, and no pydantic: a scan never imports it
for its results (issue 20).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, Protocol, Self

import msgspec
from msgspec import DecodeError as ResultError
from msgspec import ValidationError, structs

# What reading a result from outside raises (both ValueErrors): ResultError for any bad
# input, malformed JSON included; ValidationError, one of them, for a key or value wrong.
__all__ = ["ResultError", "ValidationError"]


class Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base for results: immutable, and unknown keys are an error when read back.

    Not tracked by the garbage collector (gc=False): a result is a tree of values built
    from the bottom up and never changed, so it can be in no reference cycle, and a sweep's
    hundred thousand stages and replies are not walked by every collection.

    The methods keep the names pydantic gave them (the results were pydantic models until
    issue 20), so that callers and tests read the same."""

    def model_dump(self, *, mode: Literal["json"], exclude: Collection[str] = ()) -> dict[str, Any]:
        """The result as the JSON contract has it, as Python data: what the JSON text holds,
        decoded (strings for enums and times; a non-finite float is None, as JSON has no
        infinity: an agent's digest must hash what the central reads back from its file).
        Only pydantic's json mode: nothing in fleet needs its python mode."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        for key in exclude:
            data.pop(key, None)
        decoded: dict[str, Any] = msgspec.json.decode(_encode(self._contract(data)))
        return decoded

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """The result's JSON text, byte for byte what pydantic wrote (`indent` as its)."""
        if type(self)._contract is not Model._contract:  # its contract reshapes it
            raw = _encode(self._contract(msgspec.to_builtins(self)))
        else:
            raw = _encode(self)
        if indent is not None:
            raw = msgspec.json.format(raw, indent=indent)
        return raw.decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with some fields replaced (not validated: the values are ours)."""
        return structs.replace(self, **update) if update else self

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """A result from Python data (parsed JSON): every field checked, unknown keys
        refused (raises ValidationError)."""
        return msgspec.convert(data, cls)

    @classmethod
    def model_validate_json(cls, text: str | bytes) -> Self:
        """A result from its JSON text: every field checked (raises ValidationError)."""
        decoded: Self = _decoder(cls).decode(text)
        return decoded

    def _contract(self, data: dict[str, Any]) -> dict[str, Any]:
        """The struct's builtins (`data`) reshaped into the JSON contract's."""
        return data


_encode = msgspec.json.Encoder().encode


@functools.cache
def _decoder(cls: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(cls)


class Mode(StrEnum):
    """How a copier hands its mail to the server."""

    direct_send = "direct_send"  # port 25 to the tenant's MX, no auth
    relay = "relay"  # port 25 with auth or an inbound connector
    submission = "submission"  # 587/465 with AUTH


class Security(StrEnum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


class Stage(StrEnum):
    """The stages of a copier's SMTP conversation, in the order they happen."""

    connect = "connect"
    banner = "banner"
    ehlo = "ehlo"
    starttls = "starttls"
    tls = "tls"
    ehlo_tls = "ehlo_tls"
    auth = "auth"
    mail = "mail"
    rcpt = "rcpt"
    data = "data"
    quit = "quit"


class StageStatus(StrEnum):
    ok = "ok"
    failed = "failed"  # the server answered no (4xx/5xx)
    error = "error"  # the conversation broke: timeout, reset, garbage, TLS alert
    skipped = "skipped"  # not reached, or deliberately not run


class Category(StrEnum):
    """What the server decided, in one closed vocabulary."""

    ok = "ok"
    ip_reputation = "ip_reputation"
    auth_disabled = "auth_disabled"
    auth_failed = "auth_failed"
    auth_required = "auth_required"
    relay_denied = "relay_denied"
    sender_rejected = "sender_rejected"
    recipient_rejected = "recipient_rejected"
    message_rejected = "message_rejected"
    tls_required = "tls_required"
    tls_failure = "tls_failure"
    throttled = "throttled"
    temporary_failure = "temporary_failure"
    unreachable = "unreachable"
    egress_unreachable = "egress_unreachable"
    resolver_failure = "resolver_failure"  # fleet's resolver failed: nothing known about the host
    timeout = "timeout"
    protocol_error = "protocol_error"
    # A domain of the conversation (sender, EHLO name, a link) is listed, not the site's IP.
    domain_reputation = "domain_reputation"
    reverse_dns = "reverse_dns"  # the site's IP has no PTR, or one that does not match
    helo_rejected = "helo_rejected"  # the EHLO/HELO name the copier gives is refused
    receiver_fault = "receiver_fault"  # the receiver's own broken setup (e.g. its DNSBL resolver)
    unrecognised_refusal = "unrecognised_refusal"  # words fleet does not know: shown, not guessed


class FlagCode(StrEnum):
    """Every flag the matrix raises (`Flag.code`): a contract, documented in the README."""

    DIRECT_SEND_DIRTY_IP = "DIRECT_SEND_DIRTY_IP"
    DIRECT_SEND_DYNAMIC_IP = "DIRECT_SEND_DYNAMIC_IP"
    DIRECT_SEND_REJECTED = "DIRECT_SEND_REJECTED"
    BASIC_AUTH_RETIRING = "BASIC_AUTH_RETIRING"
    AUTH_DISABLED = "AUTH_DISABLED"
    AUTH_FAILED = "AUTH_FAILED"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    TLS_FAILURE = "TLS_FAILURE"
    TLS_REQUIRED = "TLS_REQUIRED"
    TLS_TOO_OLD_FOR_DEVICE = "TLS_TOO_OLD_FOR_DEVICE"
    CERT_EXPIRING = "CERT_EXPIRING"
    RELAY_DENIED = "RELAY_DENIED"
    SENDER_REJECTED = "SENDER_REJECTED"
    RECIPIENT_REJECTED = "RECIPIENT_REJECTED"
    MESSAGE_REJECTED = "MESSAGE_REJECTED"
    IP_REPUTATION = "IP_REPUTATION"
    DOMAIN_LISTED = "DOMAIN_LISTED"
    REVERSE_DNS = "REVERSE_DNS"
    HELO_REJECTED = "HELO_REJECTED"
    RECEIVER_FAULT = "RECEIVER_FAULT"
    UNRECOGNISED_REFUSAL = "UNRECOGNISED_REFUSAL"
    THROTTLED = "THROTTLED"
    TEMPORARY_FAILURE = "TEMPORARY_FAILURE"
    UNREACHABLE = "UNREACHABLE"
    TIMEOUT = "TIMEOUT"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    EGRESS_UNREACHABLE = "EGRESS_UNREACHABLE"
    RESOLVER_FAILURE = "RESOLVER_FAILURE"
    EGRESS_IP_CHANGED = "EGRESS_IP_CHANGED"
    LISTED = "LISTED"
    BLOCKLIST_UNKNOWN = "BLOCKLIST_UNKNOWN"
    MX_MISMATCH = "MX_MISMATCH"
    MX_UNKNOWN = "MX_UNKNOWN"
    SPF_NOT_AUTHORISED = "SPF_NOT_AUTHORISED"
    SPF_BROKEN = "SPF_BROKEN"
    SPF_UNKNOWN = "SPF_UNKNOWN"
    OAUTH_TOKEN_FAILED = "OAUTH_TOKEN_FAILED"  # noqa: S105
    OAUTH_REFUSED = "OAUTH_REFUSED"
    # --verify-delivery: where the test message went after the server accepted it
    DELIVERED_TO_JUNK = "DELIVERED_TO_JUNK"
    NOT_DELIVERED = "NOT_DELIVERED"
    DELIVERY_UNKNOWN = "DELIVERY_UNKNOWN"
    # Raised by the runner, not the matrix: fleet itself failed on the site (a bug).
    INTERNAL_ERROR = "INTERNAL_ERROR"


class Verdict(StrEnum):
    ok = "ok"
    warn = "warn"
    critical = "critical"
    unknown = "unknown"

    @property
    def severity(self) -> Severity:
        """The severity of a change to this verdict (to ok: info), `Severity.verdict` undone."""
        return Severity.info if self is Verdict.ok else Severity(self.value)


class Severity(StrEnum):
    info = "info"
    warn = "warn"
    critical = "critical"
    unknown = "unknown"

    @property
    def verdict(self) -> Verdict:
        """The verdict a flag of this severity gives its site (info leaves it ok)."""
        return Verdict.ok if self is Severity.info else Verdict(self.value)


# The one order of severity, worst first: a site's verdict is the worst of its flags, and
# flags and changes are listed in this order. `unknown` outranks `warn` because "we could
# not tell" must never read as a mere warning.
WORST_FIRST: tuple[Severity, ...] = (
    Severity.critical,
    Severity.unknown,
    Severity.warn,
    Severity.info,
)
SEVERITY_ORDER: dict[Severity, int] = {s: i for i, s in enumerate(WORST_FIRST)}
VERDICT_RANK: dict[Verdict, int] = {
    s.verdict: len(WORST_FIRST) - 1 - i for i, s in enumerate(WORST_FIRST)
}


def worst(verdicts: list[Verdict]) -> Verdict:
    """The worst verdict of several (ok when there are none)."""
    return max(verdicts, key=VERDICT_RANK.__getitem__, default=Verdict.ok)


class Reply(Model, frozen=True, kw_only=True):
    """One SMTP reply: code, enhanced status code (if any) and the full text."""

    code: int | None = None
    enhanced: str | None = None
    text: str = ""


class StageResult(Model, frozen=True, kw_only=True):
    stage: Stage
    status: StageStatus
    command: str | None = None  # as sent, secrets redacted
    reply: Reply | None = None
    elapsed_s: float | None = None
    detail: str | None = None  # what went wrong when there was no reply


class TlsInfo(Model, frozen=True, kw_only=True):
    version: str | None = None
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    san: list[str] = []
    not_after: datetime | None = None
    verified: bool | None = None  # None: the device does not verify, so neither did we
    verify_error: str | None = None
    capped_at: str | None = None  # the device's tls_max, when the probe was capped


class Conversation(Model, frozen=True, kw_only=True):
    """One SMTP conversation as a copier would have it, stage by stage."""

    id: str
    host: str
    port: int
    security: Security
    mode: Mode
    auth_mechanism: str | None = None
    started_at: datetime
    elapsed_s: float
    stages: list[StageResult]
    ehlo_before_tls: list[str] = []
    ehlo_after_tls: list[str] = []
    tls: TlsInfo | None = None
    observed_ip: str | None = None  # the client IP the server echoed
    category: Category
    rule: str | None = None  # the classifier rule that matched
    failed_stage: Stage | None = None
    reply: Reply | None = None  # the reply that decided the category
    finding: str  # what happened, in plain words
    remediation: str | None = None
    test_message_id: str | None = None  # only with --send-test
    queue_id: str | None = None


class BlocklistStatus(StrEnum):
    listed = "listed"
    clean = "clean"
    unknown = "unknown"


class ListingSeverity(StrEnum):
    abuse = "abuse"  # spam source, exploited host: receivers reject
    policy = "policy"  # dynamic/residential range: must not send direct to MX


class BlocklistResult(Model, frozen=True, kw_only=True):
    ip: str
    zone: str  # as shown to people; never contains a DQS key
    name: str
    status: BlocklistStatus
    codes: list[str] = []
    lists: list[str] = []
    meaning: str | None = None
    severity: ListingSeverity | None = None
    reason: str | None = None  # the list's TXT record
    delist: str | None = None
    detail: str | None = None  # why unknown


class EgressTransport(StrEnum):
    direct = "direct"
    bind = "bind"
    socks5 = "socks5"


class Egress(Model, frozen=True, kw_only=True):
    transport: EgressTransport
    via: str = "direct"
    bind: str | None = None
    declared_ip: str | None = None
    observed_ips: list[str] = []
    egress_ip: str | None = None  # the IP receivers see: observed if known, else declared


class Flag(Model, frozen=True, kw_only=True):
    code: str
    severity: Severity
    devices: list[str] = []
    evidence: str
    remediation: str


class DeliveryStatus(StrEnum):
    """Where the test message was found in the recipient's mailbox (--verify-delivery)."""

    inbox = "inbox"
    junk = "junk"
    not_delivered = "not_delivered"  # not in the Inbox or Junk within the window
    unknown = "unknown"  # the mailbox could not be checked (login, TLS, network)


class Delivery(Model, frozen=True, kw_only=True):
    """What the recipient's mailbox showed of one test message."""

    method: str  # imap | graph
    mailbox: str  # the login or mailbox checked (not a secret)
    test_message_id: str
    status: DeliveryStatus
    folder: str | None = None  # the folder as the server names it
    delay_s: float | None = None  # from the end of DATA until fleet saw it
    within_s: float
    # the receiver's verdicts from Authentication-Results (pass, fail, softfail, none, ...)
    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    compauth: str | None = None
    authentication_results: str | None = None  # the header as the receiver stamped it
    deleted: bool = False  # fleet deleted the test message afterwards
    detail: str | None = None  # why unknown, or what else went wrong (the delete)


class ConversationRecord(Model, frozen=True, kw_only=True):
    """What a site's result keeps of one conversation: where it went, its TLS and what was
    said. Devices that share the conversation refer to it by id, so it is kept once. In the
    JSON contract each device still carries these keys (see SiteResult._contract), in
    this order, after its `conversation`."""

    host: str
    port: int
    tls: TlsInfo | None = None
    transcript: list[StageResult] = []
    test_message_id: str | None = None
    queue_id: str | None = None


# The keys a device of the JSON contract takes from its conversation.
_RECORD_KEYS: tuple[str, ...] = ConversationRecord.__struct_fields__


# How a device logs in (`DeviceResult.login`, a JSON key): with a password, or with OAuth.
Login = Literal["password", "oauth2"]


class DeviceResult(Model, frozen=True, kw_only=True):
    """One copier's outcome: what its conversation (`conversation`, by id) means for it."""

    device: str
    model: str | None = None
    location: str | None = None
    mode: Mode
    verdict: Verdict
    category: Category
    # the id of the rule that decided the category (`Conversation.rule`: a RuleId, or
    # "learned.reader"); None where no rule did (a fallback, an ok, a result stored before
    # the key existed)
    rule: str | None = None
    failed_stage: Stage | None = None
    reply: Reply | None = None
    finding: str
    remediation: str | None = None
    conversation: str  # id of the conversation it had: a key of its site's `conversations`
    mailbox: str | None = None  # the login's username (not a secret): the readiness view
    login: Login | None = None  # None: no login
    delivery: Delivery | None = None  # --verify-delivery: where the test message went


# Terms of an SPF record that may cost a DNS lookup, all includes counted (RFC 7208 4.6.4):
# one more is a permerror.
SPF_MAX_LOOKUPS = 10


class SpfResult(StrEnum):
    """The results of RFC 7208 check_host(), plus `unknown`: no egress IP to check."""

    pass_ = "pass"  # noqa: S105 - an SPF result, not a password
    fail = "fail"
    softfail = "softfail"
    neutral = "neutral"
    none = "none"
    permerror = "permerror"
    temperror = "temperror"
    unknown = "unknown"


class MxResult(StrEnum):
    match = "match"  # the copier's host is one of the domain's MX hosts
    mismatch = "mismatch"  # another host, a typo, or an IP address instead of the MX name
    none = "none"  # the domain publishes no MX: nothing to compare with
    unknown = "unknown"  # the MX lookup could not be answered


# The two Direct Send checks carry the same keys in the same order: the JSON of a result
# is a contract (readers and golden files see every key, null where it does not apply), so a
# key that means nothing for a kind is typed None (or empty) rather than left out. `kind`
# is their tag: msgspec reads it wherever it stands but writes it first, so the contract's
# order (`device`, then `kind`) is put back by _check_contract.


class MxCheck(Model, frozen=True, kw_only=True, tag_field="kind", tag="mx"):
    """Does a Direct Send or relay device send to the MX of its domain (probes/direct_send)."""

    device: str
    domain: str  # the domain whose MX the copier should use
    ip: None = None
    result: MxResult
    detail: str
    record: None = None
    host: str | None = None  # the host the copier is configured for
    mx_hosts: list[str] = []  # the domain's MX, preferred first
    mechanism: None = None
    lookups: None = None
    add: None = None

    @property
    def kind(self) -> Literal["mx"]:
        return "mx"

    def _contract(self, data: dict[str, Any]) -> dict[str, Any]:
        return _check_contract(data)


class SpfCheck(Model, frozen=True, kw_only=True, tag_field="kind", tag="spf"):
    """Does the sender domain's SPF authorise the site's egress IP (probes/direct_send)."""

    device: str
    domain: str  # the sender's domain
    ip: str | None = None  # the egress IP evaluated (None: the site's IP is not known)
    result: SpfResult
    detail: str
    record: str | None = None  # the domain's SPF record, exactly as published
    host: None = None
    mx_hosts: Annotated[list[str], msgspec.Meta(max_length=0)] = []
    mechanism: str | None = None  # the term that decided ("-all", "include:...")
    lookups: int | None = None  # terms that cost a DNS lookup (limit: SPF_MAX_LOOKUPS)
    add: str | None = None  # the mechanism that would authorise the IP ("ip4:...")

    @property
    def kind(self) -> Literal["spf"]:
        return "spf"

    def _contract(self, data: dict[str, Any]) -> dict[str, Any]:
        return _check_contract(data)


# MX and SPF readiness of one Direct Send or relay device, told apart by `kind`.
DirectSendCheck = MxCheck | SpfCheck


def _check_contract(data: dict[str, Any]) -> dict[str, Any]:
    """A check's builtins in the contract's order: `device`, then `kind`, then the rest."""
    return {"device": data["device"], **data}


class SiteResult(Model, frozen=True, kw_only=True):
    site: str
    client: str
    name: str | None = None
    tags: list[str] = []
    verdict: Verdict
    flags: list[Flag] = []
    egress: Egress
    blocklists: list[BlocklistResult] = []
    devices: list[DeviceResult] = []
    # The site's conversations by id, each kept once however many devices share it.
    conversations: dict[str, ConversationRecord] = {}
    checks: list[DirectSendCheck] = []
    started_at: datetime
    finished_at: datetime

    def __post_init__(self) -> None:
        for device in self.devices:
            if device.conversation not in self.conversations:
                raise ValidationError(
                    f"device {device.device!r} refers to conversation {device.conversation!r}, "
                    "which the site does not have"
                )

    @property
    def egress_ip(self) -> str | None:
        """The IP receivers see: kept once, in `egress`."""
        return self.egress.egress_ip

    def conversation_of(self, device: DeviceResult) -> ConversationRecord:
        """The conversation a device of this site had."""
        return self.conversations[device.conversation]

    def _contract(self, data: dict[str, Any]) -> dict[str, Any]:
        return _site_contract(data)

    def stored_json(self) -> str:
        """The site as the store keeps it: every fact once (the struct's own encoding)."""
        return _encode(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> SiteResult:
        """A site from the store: the shape it keeps now, or the JSON contract's shape it
        kept before the redesign (read as Python data and reshaped)."""
        try:
            site: SiteResult = _decoder(SiteResult).decode(text)
        except ValidationError:
            return cls.from_contract(msgspec.json.decode(text))
        return site

    @classmethod
    def from_contract(cls, data: Any) -> SiteResult:
        """A site from the JSON contract's shape (or the store's), as Python data."""
        try:
            shaped = _stored_shape(data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return msgspec.convert(shaped, SiteResult)

    def without_transcripts(self) -> SiteResult:
        """The site as reports for people need it; transcripts stay in the store. A sweep of
        10,000 sites keeps these in memory, not every stage of 20,000 conversations."""
        if not any(c.transcript for c in self.conversations.values()):
            return self
        light = {cid: structs.replace(c, transcript=[]) for cid, c in self.conversations.items()}
        return structs.replace(self, conversations=light)


def _site_contract(data: dict[str, Any]) -> dict[str, Any]:
    """A site's builtins (the store's shape) as the JSON contract has it (what users'
    scripts, agents' digests and the golden files read): `egress_ip` beside `egress`, each
    device with the keys of its conversation, each check's keys in the contract's order.
    (A dump that leaves `conversations` out gets devices without the conversation's keys.)"""
    conversations: dict[str, dict[str, Any]] = data.pop("conversations", {})
    contract: dict[str, Any] = {}
    for key, value in data.items():
        if key == "egress":
            contract["egress_ip"] = value.get("egress_ip")
        elif key == "devices":
            value = [_with_conversation(d, conversations) for d in value]
        elif key == "checks":
            value = [_check_contract(c) for c in value]
        contract[key] = value
    return contract


def _stored_shape(data: Any) -> Any:
    """A site as the JSON contract has it (agents' files, `--format json`, and the store
    before the redesign) in the shape SiteResult keeps: without the `egress_ip` beside
    `egress` (it can only repeat what `egress` says), and its devices' copies of the
    conversations they share kept once in `conversations`. Anything else passes unchanged."""
    if not isinstance(data, dict) or ("egress_ip" not in data and "conversations" in data):
        return data
    data = dict(data)
    if "egress_ip" in data:
        said = data.pop("egress_ip")
        egress = data.get("egress")
        known = (
            egress.get("egress_ip")
            if isinstance(egress, dict)
            else getattr(egress, "egress_ip", None)
        )
        if said != known:
            raise ValueError(f"egress_ip {said!r} is not the egress's egress_ip {known!r}")
    if "conversations" not in data and isinstance(data.get("devices"), list):
        data["devices"], data["conversations"] = _shared(data["devices"])
    return data


def _shared(devices: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Devices of the contract's shape without their copies of the conversation they share,
    and the conversations, once each. Copies that differ are refused: which one is true
    cannot be told."""
    kept: list[Any] = []
    conversations: dict[str, Any] = {}
    for device in devices:
        if not isinstance(device, dict):
            kept.append(device)  # a DeviceResult, or rubbish that validation will name
            continue
        device = dict(device)
        record = {key: device.pop(key) for key in _RECORD_KEYS if key in device}
        cid = device.get("conversation")
        if isinstance(cid, str):
            if conversations.setdefault(cid, record) != record:
                raise ValueError(
                    f"devices that share conversation {cid!r} tell it differently "
                    f"(device {device.get('device')!r})"
                )
        kept.append(device)
    return kept, conversations


def _with_conversation(
    device: dict[str, Any], conversations: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A device as the JSON contract has it: its conversation's keys after `conversation`."""
    out: dict[str, Any] = {}
    for key, value in device.items():
        out[key] = value
        if key == "conversation":
            out.update(conversations.get(value, {}))
    return out


# An id is printed, stored and named on the command line: a result from elsewhere (an
# agent's file) with anything but these characters is refused when read.
SWEEP_ID_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._:-]{0,99}$"
_SWEEP_ID = re.compile(SWEEP_ID_PATTERN)


class SweepInfo(Model, frozen=True, kw_only=True):
    id: str
    started_at: datetime
    finished_at: datetime | None = None
    complete: bool
    interrupted: str | None = None  # why it stopped early
    tool_version: str
    inventory: str | None = None
    filters: list[str] = []
    sites_planned: int
    sites_missing: list[str] = []
    send_test: bool = False
    origin: str | None = None  # "local", or "ingest:<file>" for an agent's result
    digest: str | None = None  # sha256 of the canonical content (agent mode)
    signature: str | None = None  # HMAC of the digest with FLEET_AGENT_KEY, when set
    # DNS questions that timed out and were asked again before the sweep ended (up to three
    # times each), and how many of those were answered in the end (the rest stayed `unknown`).
    dns_retries: int = 0
    dns_retries_answered: int = 0

    def __post_init__(self) -> None:
        if not _SWEEP_ID.fullmatch(self.id):
            raise ValidationError(f"sweep id {self.id!r} does not match {SWEEP_ID_PATTERN}")


class ChangeKind(StrEnum):
    """What changed for a site since its previous complete sweep."""

    new_flag = "new_flag"
    resolved_flag = "resolved_flag"
    verdict = "verdict"
    listed = "listed"
    delisted = "delisted"
    egress_ip = "egress_ip"


class Change(Model, frozen=True, kw_only=True):
    """One difference between a sweep and the previous complete sweep of a site."""

    site: str
    client: str
    kind: ChangeKind
    severity: Severity
    summary: str
    before: str | None = None
    after: str | None = None


class SweepReading(Protocol):
    """A sweep as the reports read it, whether held in memory (SweepResult) or streamed from
    the store (SweepView): the one shape renderers take, so none can read the two apart.
    `sites` may be read more than once; each reading starts again from the first site."""

    @property
    def sweep(self) -> SweepInfo: ...
    @property
    def changes(self) -> list[Change]: ...
    @property
    def previous_sweep(self) -> str | None: ...
    @property
    def counts(self) -> dict[Verdict, int]: ...
    @property
    def site_count(self) -> int: ...
    @property
    def sites(self) -> Iterable[SiteResult]: ...


def count_verdicts(sites: Iterable[SiteResult]) -> dict[Verdict, int]:
    """How many sites have each verdict."""
    counts: dict[Verdict, int] = {}
    for site in sites:
        counts[site.verdict] = counts.get(site.verdict, 0) + 1
    return counts


class _SweepDocument(Model, frozen=True, kw_only=True):
    """A sweep's JSON document as read: its sites still in the contract's shape."""

    sweep: SweepInfo
    sites: list[dict[str, Any]]
    changes: list[Change] = []
    previous_sweep: str | None = None


class SweepResult(Model, frozen=True, kw_only=True):
    """A whole sweep in memory (what the runner gives and an agent's file holds)."""

    sweep: SweepInfo
    sites: list[SiteResult]
    changes: list[Change] = []
    previous_sweep: str | None = None

    @property
    def counts(self) -> dict[Verdict, int]:
        return count_verdicts(self.sites)

    @property
    def site_count(self) -> int:
        return len(self.sites)

    def _contract(self, data: dict[str, Any]) -> dict[str, Any]:
        if "sites" in data:
            data["sites"] = [_site_contract(site) for site in data["sites"]]
        return data

    @classmethod
    def model_validate_json(cls, text: str | bytes) -> SweepResult:
        """A sweep from its JSON document (a sweep's `--format json`, an agent's file, a
        push): every field of every site checked (raises ValidationError)."""
        return cls._from_document(_decoder(_SweepDocument).decode(text))

    @classmethod
    def model_validate(cls, data: Any) -> SweepResult:
        """A sweep from its JSON document as Python data (parsed JSON)."""
        return cls._from_document(msgspec.convert(data, _SweepDocument))

    @classmethod
    def _from_document(cls, document: _SweepDocument) -> SweepResult:
        sites = []
        for index, site in enumerate(document.sites):
            try:
                sites.append(SiteResult.from_contract(site))
            except ValidationError as exc:
                raise ValidationError(f"sites[{index}]: {exc}") from None
        return cls(
            sweep=document.sweep,
            sites=sites,
            changes=document.changes,
            previous_sweep=document.previous_sweep,
        )


@dataclass(frozen=True)
class SweepView:
    """A sweep whose sites are streamed (from the store, or filtered: `only_client`), one at
    a time, so that a sweep of 10,000 sites is never held in memory whole; with its info,
    changes and verdict counts. A SweepReading, as SweepResult is. Each reading of `sites`
    starts again from the first site."""

    sweep: SweepInfo
    changes: list[Change]
    previous_sweep: str | None
    counts: dict[Verdict, int]
    site_source: Callable[[], Iterator[SiteResult]]

    @property
    def sites(self) -> Iterator[SiteResult]:
        return self.site_source()

    @property
    def site_count(self) -> int:
        return sum(self.counts.values())


# ---- what the runner observed, before the matrix judges it ---------------------------


@dataclass(frozen=True)
class DeviceObservation:
    """One copier and the conversation it shares."""

    device: str
    model: str | None
    location: str | None
    mode: Mode
    authenticated: bool
    uses_password: bool
    tls_max: str | None
    conversation: Conversation
    mailbox: str | None = None  # the login's username
    login: Login | None = None
    delivery: Delivery | None = None  # --verify-delivery: where the test message went

    @property
    def port25_unauthenticated(self) -> bool:
        """Direct Send, or relay without a login (port 25 in real life; the mode says it,
        so a lab on another port is judged the same way)."""
        return not self.authenticated and self.mode in (Mode.direct_send, Mode.relay)


class SiteObservation(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    site: str
    client: str
    name: str | None
    tags: list[str]
    egress: Egress
    devices: list[DeviceObservation]
    blocklists: list[BlocklistResult]
    checks: list[DirectSendCheck]
    started_at: datetime
    finished_at: datetime
    zones: int = 0  # blocklist zones configured for the sweep
