"""The inventory: clients, sites and copiers, loaded from YAML.

The classes here are the one definition of the inventory's shape: frozen msgspec structs,
which is what the rest of fleet reads (and what the cache of validated inventories decodes
into, without pydantic). Each field's checks are markers in its `Annotated` type (`Check`,
and msgspec's `Meta(min_length=...)`, which a cache entry's decoding checks too) and each
class's cross-field rules are methods marked `@rule`: when a file is parsed,
fleet.inventory_models builds pydantic models from these definitions, validates with
them, and converts the result to these structs.

Errors name the file, line, column and field path, and all of them are reported at once.
Secrets are never values in the YAML: only `*_env` (an environment variable) or `*_file`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, field

from fleet.credentials import SecretSource
from fleet.errors import InventoryError, Position, SourceError, YamlLoadError
from fleet.net import join_host_port, split_host_port
from fleet.results import EgressTransport, ListingSeverity, Mode, Security

if TYPE_CHECKING:
    # The YAML reader (PyYAML) and pydantic load when a file is parsed: an inventory from
    # the cache (fleet.inventory_cache) needs neither.
    from pydantic import BaseModel, ValidationError

    from fleet.yaml_source import Path, SourceMap

DEFAULT_INVENTORY = "inventory.yaml"
INVENTORY_ENV = "FLEET_INVENTORY"


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An inventory class: immutable, no key but its fields (checked when parsed); a default
    value is left out of its JSON (the cache of validated inventories). Each class says
    `frozen=True` again: msgspec inherits it, mypy does not see that."""


class Check:
    """A field's check, run when a file is parsed: `before` on the value as YAML gave it,
    else on the value of the field's type. It returns the value to keep, or raises
    ValueError with the message a technician reads."""

    __slots__ = ("before", "function")

    def __init__(self, function: Callable[[Any], Any], *, before: bool = False) -> None:
        self.function = function
        self.before = before


RuleT = TypeVar("RuleT", bound=Callable[[Any], None])


def rule(check: RuleT) -> RuleT:
    """Marks a class's cross-field rule: run on the parsed object once its fields are valid
    (its attributes and properties are those of the class), raising ValueError."""
    check.__fleet_rule__ = True  # type: ignore[attr-defined]
    return check


# ---- value types with messages a technician understands -------------------------------


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"must be 1-65535, got {value}")
    return value


def _positive(value: float) -> float:
    if not value > 0:  # not `<= 0`: NaN (YAML's .nan) is neither
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def _finite(value: float) -> float:
    # A float kept in a result (verify's within_s) is written to JSON, which has no
    # infinity: .inf would be null there, and the result would never read back.
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number of seconds, got {value}")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip("[]")))
    except ValueError:
        raise ValueError(f"must be an IP address, got '{value}'") from None


_HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def _host(value: str) -> str:
    value = str(value).strip()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(value):
        raise ValueError(f"must be a host name or IP address, got '{value}'")
    return value.rstrip(".").lower()


def _nameserver(value: str) -> str:
    """`host` or `host:port` (IPv6 as `[::1]:53`), normalised for c-ares. A host name is
    kept as written and resolved once when a sweep starts (c-ares wants addresses)."""
    text = str(value).strip()
    try:
        host, port = split_host_port(text)
    except ValueError:
        raise ValueError(f"must be a host or host:port, got {value!r}") from None
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ValueError(f"port must be 1-65535, got {port!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if text.startswith("[") or not _HOST_RE.fullmatch(host):
            raise ValueError(f"must be a host or host:port, got {value!r}") from None
        name = host.rstrip(".").lower()
        return name if port is None else f"{name}:{port}"
    if port is None:
        return str(address)
    return join_host_port(str(address), port)


_ADDR_RE = re.compile(r"^[^\s<>@\"(),;:\\]+@[A-Za-z0-9.-]+\.?[A-Za-z0-9-]*$")


def _address(value: str) -> str:
    value = str(value).strip()
    if not _ADDR_RE.fullmatch(value):
        raise ValueError(f"must be an e-mail address like scanner@example.com, got '{value}'")
    return value


def _slug(value: str) -> str:
    value = str(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", value):
        raise ValueError(
            f"must be a short id of lowercase letters, digits, '.', '_' or '-', got '{value}'"
        )
    return value


def _tls_version(value: Any) -> str:
    # YAML reads `tls_max: 1.2` as a float; accept it as the version it means.
    text = f"{value:.1f}" if isinstance(value, float) else str(value).strip()
    if text not in TLS_VERSIONS:
        raise ValueError(f"must be one of {', '.join(TLS_VERSIONS)}, got '{value}'")
    return text


def _file_path(value: str) -> str:
    # A NUL cannot be in a path: the operating system would refuse it, much later.
    if "\x00" in value:
        raise ValueError("must be a file path, got text with a NUL character in it")
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)):
        # Not echoed: what was pasted where a name belongs is most often the secret itself.
        raise ValueError(
            "must be the NAME of an environment variable "
            "(the value is not shown: it may be the secret itself)"
        )
    return str(value)


def _via(value: str) -> str:
    text = str(value).strip()
    if text == "direct":
        return text
    parts = urlsplit(text)
    if parts.scheme != "socks5":
        raise ValueError(f"must be 'direct' or 'socks5://host:port', got '{value}'")
    if parts.username or parts.password:
        raise ValueError("proxy credentials must not be written in the inventory")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"proxy port must be 1-65535, got '{value}'") from None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"must be 'socks5://host:port', got '{value}'")
    host = _host(parts.hostname)
    return f"socks5://[{host}]:{port}" if ":" in host else f"socks5://{host}:{port}"


TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")

Port = Annotated[int, Check(_no_bool, before=True), Check(_port)]
Seconds = Annotated[float, Check(_no_bool, before=True), Check(_positive)]
FiniteSeconds = Annotated[float, Check(_no_bool, before=True), Check(_positive), Check(_finite)]
Count = Annotated[int, Check(_no_bool, before=True), Check(_at_least_one)]
IpAddress = Annotated[str, Check(_ip)]
Host = Annotated[str, Check(_host)]
Nameserver = Annotated[str, Check(_nameserver)]
Address = Annotated[str, Check(_address)]
Slug = Annotated[str, Check(_slug)]
TlsVersion = Annotated[str, Check(_tls_version, before=True)]
EnvName = Annotated[str, Check(_env_name)]
FilePath = Annotated[str, Check(_file_path)]
Via = Annotated[str, Check(_via)]
Text = Annotated[str, Meta(min_length=1)]


# ---- defaults ---------------------------------------------------------------------------


class DnsSettings(Strict, frozen=True):
    nameservers: list[Nameserver] = field(default_factory=list)
    timeout_s: Seconds = 3.0
    tries: Count = 2
    concurrency: Count = 100  # DNS queries in flight at once


class Timeouts(Strict, frozen=True):
    connect_s: Seconds = 10.0
    command_s: Seconds = 30.0
    site_s: Seconds = 120.0


class Concurrency(Strict, frozen=True):
    global_: Count = field(default=200, name="global")
    per_site: Count = 2
    per_host: Count = 20


class SiteConcurrency(Strict, frozen=True):
    per_site: Count | None = None  # conversations at this site at once
    per_host: Count | None = None  # and, from this site, to one mail server at once


class SiteTimeouts(Strict, frozen=True):
    connect_s: Seconds | None = None
    command_s: Seconds | None = None
    site_s: Seconds | None = None


class PublicIpLookup(Strict, frozen=True):
    """Ask a resolver that answers with the asker's own address (OpenDNS's myip) what this
    machine's public IP is: the egress IP of sites swept `direct`."""

    name: Host = "myip.opendns.com"
    nameserver: Nameserver = "208.67.222.222"


class Defaults(Strict, frozen=True):
    dns: DnsSettings = field(default_factory=DnsSettings)
    public_ip_lookup: PublicIpLookup | None = None  # off unless configured
    timeouts: Timeouts = field(default_factory=Timeouts)
    concurrency: Concurrency = field(default_factory=Concurrency)
    ehlo_name: Host | None = None  # the name the probe gives in EHLO (default: this machine's)


# ---- blocklists -------------------------------------------------------------------------

BlocklistKind = Literal["spamhaus-zen", "spamhaus-dqs", "spamcop", "barracuda", "generic"]


def _code(value: Any) -> str:
    text = str(value)
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(
            f"return codes must be IPv4 addresses like 127.0.0.2, got '{value}'"
        ) from None
    return str(address)


ReturnCode = Annotated[str, Check(_code, before=True)]


class CodeMeaning(Strict, frozen=True):
    list: Text
    meaning: Text
    severity: ListingSeverity = ListingSeverity.abuse


class BlocklistZone(Strict, frozen=True):
    zone: Host | None = None
    kind: BlocklistKind = "generic"
    name: Text | None = None
    codes: dict[ReturnCode, CodeMeaning] = field(default_factory=dict)
    key_env: EnvName | None = None  # Spamhaus DQS key
    key_file: FilePath | None = None
    delist: Text | None = None  # where to ask for removal
    ipv6: bool | None = None  # the list covers IPv6 addresses (default: by kind)

    @rule
    def _zone_or_dqs(self) -> None:
        if self.kind == "spamhaus-dqs":
            if (self.key_env is None) == (self.key_file is None):
                raise ValueError("a spamhaus-dqs zone needs exactly one of key_env or key_file")
        elif self.zone is None:
            raise ValueError("'zone' is required (the DNS zone to query, e.g. zen.spamhaus.org)")
        elif self.key_env or self.key_file:
            raise ValueError("key_env/key_file are only for kind: spamhaus-dqs")


# ---- SMTP settings ----------------------------------------------------------------------


def _https_url(value: str) -> str:
    parts = urlsplit(str(value))
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"must be an https:// URL, got '{value}'")
    if parts.username or parts.password or parts.query:
        raise ValueError("must be a plain https:// URL without credentials or a query string")
    return str(value).rstrip("/")


HttpsUrl = Annotated[str, Check(_https_url)]

# The keys each OAuth provider takes (besides `provider`); any other key is a mistake.
_OAUTH_KEYS = {
    "token": {"token_env", "token_file"},
    "microsoft": {
        "tenant_id",
        "client_id",
        "client_secret_env",
        "client_secret_file",
        "certificate_file",
        "private_key_file",
        "authority",
        "ca_file",
    },
    "google": {"service_account_file", "ca_file"},
}


class OAuth2(Strict, frozen=True):
    """Where the XOAUTH2 access token comes from: a token fetched elsewhere (`token`), or
    fleet's own from Microsoft Entra ID (client credentials) or a Google service account."""

    provider: Literal["microsoft", "google", "token"] | None = None  # None: token
    token_env: EnvName | None = None
    token_file: FilePath | None = None
    tenant_id: Text | None = None
    client_id: Text | None = None
    client_secret_env: EnvName | None = None
    client_secret_file: FilePath | None = None
    certificate_file: FilePath | None = None  # PEM certificate (and its key, unless below)
    private_key_file: FilePath | None = None  # the certificate's private key, if apart
    authority: HttpsUrl | None = None  # default https://login.microsoftonline.com
    service_account_file: FilePath | None = None  # google: the key file (JSON)
    ca_file: FilePath | None = None  # CA for the token endpoint (a TLS-inspecting proxy)

    @property
    def kind(self) -> str:
        return self.provider or "token"

    @rule
    def _one_source(self) -> None:
        kind = self.kind
        given = {
            k
            for k in _OAUTH_KEYS["microsoft"] | _OAUTH_KEYS["google"] | _OAUTH_KEYS["token"]
            if getattr(self, k) is not None
        }
        stray = sorted(given - _OAUTH_KEYS[kind])
        if stray:
            raise ValueError(f"oauth2 provider {kind} does not take {', '.join(stray)}")
        if kind == "token":
            if (self.token_env is None) == (self.token_file is None):
                raise ValueError("oauth2 needs exactly one of token_env or token_file")
        elif kind == "microsoft":
            if self.tenant_id is None or self.client_id is None:
                raise ValueError("oauth2 provider microsoft needs tenant_id and client_id")
            credentials = [self.client_secret_env, self.client_secret_file, self.certificate_file]
            if sum(c is not None for c in credentials) != 1:
                raise ValueError(
                    "oauth2 provider microsoft needs exactly one of client_secret_env, "
                    "client_secret_file or certificate_file"
                )
            if self.private_key_file is not None and self.certificate_file is None:
                raise ValueError("private_key_file goes with certificate_file")
        elif self.service_account_file is None:
            raise ValueError("oauth2 provider google needs service_account_file")

    @property
    def client_secret(self) -> SecretSource | None:
        """Microsoft: where the app's client secret lives (None for a certificate)."""
        if self.client_secret_env is None and self.client_secret_file is None:
            return None
        return SecretSource(env=self.client_secret_env, file=self.client_secret_file)


class Auth(Strict, frozen=True):
    username: Text
    password_env: EnvName | None = None
    password_file: FilePath | None = None
    oauth2: OAuth2 | None = None
    mechanism: Literal["plain", "login", "xoauth2"] | None = None

    @rule
    def _one_secret(self) -> None:
        sources = [self.password_env, self.password_file, self.oauth2]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("auth needs exactly one of password_env, password_file or oauth2")
        if self.oauth2 is not None and self.mechanism not in (None, "xoauth2"):
            raise ValueError("oauth2 authenticates with mechanism xoauth2")
        if self.oauth2 is None and self.mechanism == "xoauth2":
            raise ValueError("mechanism xoauth2 needs an oauth2 token source")

    @property
    def uses_password(self) -> bool:
        return self.oauth2 is None

    @property
    def secret(self) -> SecretSource:
        """Where this login's password or OAuth token is read from."""
        if self.oauth2 is not None:
            # microsoft/google: the token is fetched (fleet.oauth); the app's own credential
            # is in oauth2, and this source names none.
            return SecretSource(env=self.oauth2.token_env, file=self.oauth2.token_file)
        return SecretSource(env=self.password_env, file=self.password_file)

    @property
    def fetches_token(self) -> bool:
        """fleet gets the OAuth token itself (provider microsoft or google)."""
        return self.oauth2 is not None and self.oauth2.kind != "token"


class SmtpSettings(Strict, frozen=True, kw_only=True):
    """A device's SMTP settings after its profile has been merged in."""

    profile: str | None = None
    host: Host
    port: Port
    security: Security = Security.starttls
    auth: Auth | None = None
    from_: Address = field(name="from")
    to: Address
    tls_max: TlsVersion | None = None
    tls_verify: bool = True  # False: the copier does not check certificates
    ca_file: FilePath | None = None
    ehlo_name: Host | None = None
    mode: Mode | None = None  # derived from port and auth when absent

    @property
    def effective_mode(self) -> Mode:
        if self.mode is not None:
            return self.mode
        if self.auth is not None:
            return Mode.relay if self.port == 25 else Mode.submission
        return Mode.submission if self.port in (465, 587) else Mode.direct_send


class SmtpProfile(Strict, frozen=True):
    """Reusable SMTP settings: any of a device's `smtp` keys, and the `verify` mailbox that
    the devices using it send to (--verify-delivery)."""

    host: Host | None = None
    port: Port | None = None
    security: Security | None = None
    auth: Auth | None = None
    from_: Address | None = field(default=None, name="from")
    to: Address | None = None
    tls_max: TlsVersion | None = None
    tls_verify: bool | None = None
    ca_file: FilePath | None = None
    ehlo_name: Host | None = None
    mode: Mode | None = None
    verify: Verify | None = None


class ImapMailbox(Strict, frozen=True, kw_only=True):
    """The recipient's mailbox over IMAP (TLS, certificate verified): read-only use, except
    that fleet deletes its own test message."""

    host: Host
    port: Port = 993
    security: Literal["tls", "starttls"] = "tls"
    username: Text
    password_env: EnvName | None = None
    password_file: FilePath | None = None
    oauth2: OAuth2 | None = None  # AUTHENTICATE XOAUTH2 instead of a password
    ca_file: FilePath | None = None  # CA for the IMAP server (default: the system's)

    @rule
    def _one_secret(self) -> None:
        sources = [self.password_env, self.password_file, self.oauth2]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("imap needs exactly one of password_env, password_file or oauth2")

    @property
    def secret(self) -> SecretSource:
        """Where the password, or the given OAuth token (provider token), is read from."""
        if self.oauth2 is not None:
            return SecretSource(env=self.oauth2.token_env, file=self.oauth2.token_file)
        return SecretSource(env=self.password_env, file=self.password_file)


class GraphMailbox(Strict, frozen=True):
    """The recipient's Microsoft 365 mailbox through Microsoft Graph (no IMAP needed): an
    Entra ID app with the Mail.ReadWrite application permission, its token from `oauth2`."""

    mailbox: Address
    oauth2: OAuth2
    endpoint: HttpsUrl = "https://graph.microsoft.com"  # national clouds have their own
    ca_file: FilePath | None = None  # CA for the Graph endpoint (a TLS-inspecting proxy)

    @rule
    def _microsoft(self) -> None:
        if self.oauth2.kind != "microsoft":
            raise ValueError("graph takes its token from oauth2 provider microsoft")


class Verify(Strict, frozen=True):
    """Where to look for the test message after the server accepted it (--verify-delivery)."""

    imap: ImapMailbox | None = None
    graph: GraphMailbox | None = None
    within_s: FiniteSeconds = 120.0  # how long to wait for it (kept in the result)

    @rule
    def _one_mailbox(self) -> None:
        if (self.imap is None) == (self.graph is None):
            raise ValueError("verify needs exactly one of imap or graph")


class Device(Strict, frozen=True, kw_only=True):
    id: Slug
    model: Text | None = None
    location: Text | None = None
    smtp: SmtpSettings
    verify: Verify | None = None  # --verify-delivery: the recipient's mailbox


class SiteEgress(Strict, frozen=True):
    via: Via = "direct"
    bind: IpAddress | None = None
    ip: IpAddress | None = None

    @property
    def transport(self) -> EgressTransport:
        """How the site's traffic leaves: through a SOCKS5 proxy, from a bound address, or direct."""
        if self.via.startswith("socks5://"):
            return EgressTransport.socks5
        return EgressTransport.bind if self.bind else EgressTransport.direct


class Site(Strict, frozen=True, kw_only=True):
    id: Slug
    client: Text
    name: Text | None = None
    tags: list[Text] = field(default_factory=list)
    egress: SiteEgress = field(default_factory=SiteEgress)
    concurrency: SiteConcurrency = field(default_factory=SiteConcurrency)
    timeouts: SiteTimeouts = field(default_factory=SiteTimeouts)
    devices: Annotated[list[Device], Meta(min_length=1)]


# ---- notifications ----------------------------------------------------------------------


def _http_url(value: str) -> str:
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, got '{value}'")
    if parts.username or parts.password:
        raise ValueError("credentials must not be written in the URL: use url_env or url_file")
    return str(value)


HttpUrl = Annotated[str, Check(_http_url)]


class EmailNotification(Strict, frozen=True, kw_only=True):
    """Alerts by e-mail through the MSP's own relay."""

    host: Host
    port: Port = 587
    security: Security = Security.starttls
    auth: Auth | None = None
    from_: Address = field(name="from")
    to: Annotated[list[Address], Meta(min_length=1)]
    attach_csv: bool = False
    ca_file: FilePath | None = None
    subject_prefix: str = "[fleet]"
    timeout_s: Seconds = 30.0

    @rule
    def _login_needs_tls(self) -> None:
        if self.auth is not None and self.security is Security.none:
            raise ValueError("a login to the relay needs TLS: set security to starttls or tls")
        if self.auth is not None and self.auth.fetches_token:
            raise ValueError("the alert relay takes a password or an oauth2 token_env/token_file")


class WebhookNotification(Strict, frozen=True):
    """Alerts as a JSON POST. Slack and Teams webhook URLs carry their secret in the URL:
    give those with url_env or url_file."""

    url: HttpUrl | None = None
    url_env: EnvName | None = None
    url_file: FilePath | None = None
    format: Literal["teams", "slack", "generic"] = "generic"
    timeout_s: Seconds = 10.0

    @rule
    def _one_url(self) -> None:
        if sum(v is not None for v in (self.url, self.url_env, self.url_file)) != 1:
            raise ValueError("a webhook needs exactly one of url, url_env or url_file")
        if self.url is not None and self.format in ("teams", "slack"):
            raise ValueError(
                f"a {self.format} webhook URL is a secret: give it with url_env or url_file, not url"
            )
        if self.url is not None and urlsplit(self.url).query:
            # A token in the URL is a secret, and the inventory is not a secret store.
            raise ValueError(
                "this webhook URL carries a query string (often a token): give it with "
                "url_env or url_file, not url"
            )


class Notifications(Strict, frozen=True):
    when: Literal["changes", "always", "critical"] = "changes"
    email: EmailNotification | None = None
    webhook: WebhookNotification | None = None


class InventoryHead(Strict, frozen=True):
    """Everything in an inventory but its sites (validated first; sites one by one)."""

    defaults: Defaults = field(default_factory=Defaults)
    profiles: dict[str, SmtpProfile] = field(default_factory=dict)
    blocklists: list[BlocklistZone] = field(default_factory=list)
    notifications: Notifications | None = None


class Inventory(InventoryHead, frozen=True, kw_only=True, dict=True):
    sites: Annotated[list[Site], Meta(min_length=1)]

    @functools.cached_property
    def site_clients(self) -> dict[str, str]:
        """Each site id's client, built once: the central checks every pushed file with it."""
        return {site.id: site.client for site in self.sites}

    def devices(self) -> Iterator[tuple[Site, Device]]:
        for site in self.sites:
            for device in site.devices:
                yield site, device

    def secret_sources(self) -> Iterator[tuple[str | None, SecretSource]]:
        """Every login (username, where its secret is) and key the inventory names, each
        once: what a sweep must know to scrub from what servers and resolvers send back."""
        seen: set[tuple[str | None, SecretSource]] = set()
        entries: list[tuple[str | None, SecretSource]] = []
        for _, device in self.devices():
            auth = device.smtp.auth
            if auth is not None:
                entries.append((auth.username, auth.secret))
            oauth2 = auth.oauth2 if auth is not None else None
            if oauth2 is not None:  # the app's own credential, when fleet fetches the token
                if oauth2.client_secret_env or oauth2.client_secret_file:
                    client_secret = SecretSource(
                        env=oauth2.client_secret_env, file=oauth2.client_secret_file
                    )
                    entries.append((None, client_secret))
                for key_file in (
                    oauth2.private_key_file,
                    oauth2.certificate_file,
                    oauth2.service_account_file,
                ):
                    if key_file is not None:
                        entries.append((None, SecretSource(file=key_file)))
        for _, device in self.devices():
            imap = device.verify.imap if device.verify is not None else None
            if imap is not None and (imap.oauth2 is None or imap.oauth2.kind == "token"):
                entries.append((imap.username, imap.secret))
            if imap is not None and imap.oauth2 is not None:
                entries.extend((None, source) for source in app_credentials(imap.oauth2))
            graph = device.verify.graph if device.verify is not None else None
            if graph is not None and graph.oauth2.client_secret is not None:
                entries.append((None, graph.oauth2.client_secret))
            if graph is not None:
                for key_file in (graph.oauth2.private_key_file, graph.oauth2.certificate_file):
                    if key_file is not None:
                        entries.append((None, SecretSource(file=key_file)))
        for zone in self.blocklists:
            if zone.key_env is not None or zone.key_file is not None:
                entries.append((None, SecretSource(env=zone.key_env, file=zone.key_file)))
        email = self.notifications.email if self.notifications else None
        if email is not None and email.auth is not None:
            entries.append((email.auth.username, email.auth.secret))
        for entry in entries:
            if entry not in seen:
                seen.add(entry)
                yield entry

    def summary(self) -> str:
        """`3 clients, 4 sites, 9 devices (direct_send 4, relay 1, submission 4)`."""
        clients = {site.client for site in self.sites}
        modes: dict[str, int] = {}
        for _, device in self.devices():
            mode = device.smtp.effective_mode.value
            modes[mode] = modes.get(mode, 0) + 1
        by_mode = ", ".join(f"{m} {n}" for m, n in sorted(modes.items()))
        n_devices = sum(modes.values())
        return (
            f"{len(clients)} client{'s' * (len(clients) != 1)}, "
            f"{len(self.sites)} site{'s' * (len(self.sites) != 1)}, "
            f"{n_devices} device{'s' * (n_devices != 1)} ({by_mode})"
        )


# ---- loading ----------------------------------------------------------------------------


# Keys that would hold a secret: rejected wherever they appear, with the right advice.
_SECRET_KEYS = {
    "password": "use password_env (an environment variable) or password_file",
    "pass": "use password_env (an environment variable) or password_file",
    "token": "use token_env (an environment variable) or token_file",
    "secret": "use an environment variable (*_env) or a file (*_file)",
    "key": "use key_env (an environment variable) or key_file",
    "api_key": "use an environment variable (*_env) or a file (*_file)",
    "client_secret": "use client_secret_env (an environment variable) or client_secret_file",
    "private_key": "use private_key_file",
}

_FILE_KEYS = (
    "ca_file",
    "password_file",
    "token_file",
    "key_file",
    "url_file",
    "client_secret_file",
    "certificate_file",
    "private_key_file",
    "service_account_file",
)


def resolve_inventory_path(path: str | None) -> str:
    """The -i/--inventory rule: the given path, else $FLEET_INVENTORY, else ./inventory.yaml."""
    return path or os.environ.get(INVENTORY_ENV) or DEFAULT_INVENTORY


def load_inventory(path: str) -> Inventory:
    """Read and validate an inventory file; raise InventoryError naming every problem. A file
    validated before, unchanged, comes from the cache instead (fleet.inventory_cache)."""
    from fleet.inventory_cache import Entry

    try:
        content = FsPath(path).read_bytes()
    except FileNotFoundError:
        raise InventoryError([SourceError(path, None, "", "no such file")]) from None
    except OSError as exc:
        raise InventoryError([SourceError(path, None, "", f"cannot read: {exc}")]) from None
    text = _decode(content, path).replace("\r\n", "\n").replace("\r", "\n")
    entry = Entry.open(path, content)
    if entry is not None:
        base = FsPath(path).resolve().parent
        cached = entry.load(
            Inventory,
            lambda files: all(_resolve_file(raw, base) == to for raw, to in files.items()),
        )
        if cached is not None:
            return cached
    files: dict[str, str] = {}
    inventory = parse_inventory(text, path, files)
    if entry is not None:
        entry.save(inventory, files)
    return inventory


def _decode(content: bytes, path: str) -> str:
    """The file's text: UTF-8, or UTF-16 as Windows tools save it (PowerShell 5.1's Out-File
    and `>`), with or without a byte order mark. Anything else is refused at its line."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # the byte order mark says which, and is dropped
    elif content[1:2] == b"\x00" and content[:1] != b"\x00":
        encoding = "utf-16-le"  # an inventory starts with ASCII: 's', '#', '-'...
    elif content[:1] == b"\x00" and content[1:2] != b"\x00":
        encoding = "utf-16-be"
    else:
        encoding = "utf-8"
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8":
            message = f"cannot read as {encoding.upper()}: {exc.reason}"
            raise InventoryError([SourceError(path, None, "", message)]) from None
        before = content[: exc.start]
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        position = Position(before.count(b"\n") + 1, column)
        message = (
            f"not UTF-8 (byte 0x{content[exc.start]:02x}): save the file as UTF-8 "
            "(Notepad: Save as, Encoding UTF-8; PowerShell: Out-File -Encoding utf8)"
        )
        raise InventoryError([SourceError(path, position, "", message)]) from None


def parse_inventory(text: str, file: str, files: dict[str, str] | None = None) -> Inventory:
    """Validate an inventory's text; `files`, when given, receives how each `*_file` path
    written in it was resolved (against the file's folder)."""
    from fleet.yaml_source import load_yaml

    try:
        data, smap = load_yaml(text, file, positions=False)
    except YamlLoadError as exc:
        raise InventoryError(exc.errors) from None
    if data is None:
        data = {}  # an empty file: reported below as the missing 'sites'
    if not isinstance(data, dict):
        raise InventoryError(
            [
                SourceError(
                    file,
                    smap.find(()),
                    "inventory",
                    "must be a mapping with a 'sites' list, got a list or a value",
                )
            ]
        )
    base = FsPath(file).resolve().parent
    quiet: set[Path] = set()  # paths whose follow-on errors would only repeat a reported one
    errors = _secret_key_errors(data, (), smap, file, quiet)
    errors.extend(_cross_checks(data, smap, file))
    data, origins = _merge_profiles(data, smap, file, errors, quiet)
    _resolve_files(data, base, files)
    inventory = _validate(data, smap, origins, quiet, file, errors)
    if errors or inventory is None:
        errors.sort(key=lambda e: (e.position.line, e.position.column) if e.position else (0, 0))
        raise InventoryError([_capped(e) for e in _dedupe(errors)])
    return inventory


# A value quoted in an error is cut to this many characters: a 50 MB scalar pasted by mistake
# must not come back whole on the terminal.
SHOWN_MAX = 80


def _shown(text: str) -> str:
    if len(text) <= SHOWN_MAX:
        return text
    return f"{text[: SHOWN_MAX - 1]}… ({len(text):,} characters)"


def _capped(error: SourceError) -> SourceError:
    """The error with any long value it quotes cut short (validators quote values whole)."""
    if len(error.path) + len(error.message) <= 4 * SHOWN_MAX:
        return error
    return error._replace(path=_shown(error.path), message=_shown(error.message))


def _validate(
    data: dict[str, Any],
    smap: SourceMap,
    origins: dict[Path, Path],
    quiet: set[Path],
    file: str,
    errors: list[SourceError],
) -> Inventory | None:
    """Validate the head, then each site on its own, freeing its raw data as it goes. Devices
    whose SMTP settings are identical after the profile merge share one validated settings
    object: a 10,000-site inventory is validated and held in a fraction of the memory (after a
    parse; one read from the cache of validated inventories holds each device's own, equal
    settings: msgspec decodes no shared objects)."""
    from pydantic import ValidationError

    from fleet.inventory_models import models, to_struct

    built = models()
    sites_raw = data.pop("sites", None)
    head: BaseModel | None = None
    try:
        head = built.of(InventoryHead).model_validate(data)
    except ValidationError as exc:
        errors.extend(_translate(exc, smap, origins, quiet, file, (), errors))
    if sites_raw is None:
        errors.append(SourceError(file, smap.find(("sites",)), "sites", "'sites' is required"))
        return None
    if not isinstance(sites_raw, list):
        got = _show(sites_raw)
        errors.append(
            SourceError(file, smap.find(("sites",)), "sites", f"must be a list, got {got}")
        )
        return None
    if not sites_raw:
        errors.append(SourceError(file, smap.find(("sites",)), "sites", "must not be empty"))
        return None
    shared: dict[str, BaseModel] = {}
    structs: dict[int, SmtpSettings] = {}  # the shared settings' structs, by validated object
    site_model = built.of(Site)
    sites: list[Site] = []
    for index, raw in enumerate(sites_raw):
        _share_smtp(raw, shared, structs)
        try:
            site = site_model.model_validate(raw)
        except ValidationError as exc:
            errors.extend(_translate(exc, smap, origins, quiet, file, ("sites", index), errors))
        else:
            if not errors:  # an inventory with errors is not built
                sites.append(to_struct(site, built, structs))
        sites_raw[index] = None  # the raw data of a validated site is no longer needed
    if errors or head is None:
        return None
    return Inventory(**{name: to_struct(value, built, {}) for name, value in head}, sites=sites)


def _share_smtp(raw: Any, shared: dict[str, BaseModel], structs: dict[int, SmtpSettings]) -> None:
    """Replace each device's raw `smtp` by a validated settings object, shared by every
    device whose settings are equal (and by one struct, in `structs`). A raw mapping that
    does not validate is left in place, so that the site's own validation reports it at its
    path."""
    from pydantic import ValidationError

    from fleet.inventory_models import models, to_struct

    devices = raw.get("devices") if isinstance(raw, dict) else None
    if not isinstance(devices, list):
        return
    for device in devices:
        smtp = device.get("smtp") if isinstance(device, dict) else None
        if not isinstance(smtp, dict):
            continue
        key = _frozen(smtp)
        settings = shared.get(key)
        if settings is None:
            try:
                settings = models().of(SmtpSettings).model_validate(smtp)
            except ValidationError:
                continue
            shared[key] = settings
            structs[id(settings)] = to_struct(settings, models(), {})
        device["smtp"] = settings


def _frozen(value: Any) -> str:
    """A key for equal YAML data: its canonical JSON (dates and the like as text)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _dedupe(errors: list[SourceError]) -> list[SourceError]:
    seen: set[str] = set()
    out = []
    for error in errors:
        if str(error) not in seen:
            seen.add(str(error))
            out.append(error)
    return out


def _secret_key_errors(
    data: Any, path: Path, smap: SourceMap, file: str, quiet: set[Path]
) -> list[SourceError]:
    """Every key that would hold a secret (removed, so it is not reported twice as unknown)."""
    from fleet.yaml_source import format_path

    errors: list[SourceError] = []
    stack: list[tuple[Any, Path]] = [(data, path)]
    while stack:
        value, here = stack.pop()
        if isinstance(value, dict):
            for key in list(value):
                advice = _SECRET_KEYS.get(str(key).lower())
                child = (*here, key)
                if advice is not None:
                    errors.append(
                        SourceError(
                            file,
                            smap.find(child),
                            format_path(child),
                            f"secrets must not be written in the inventory: {advice}",
                        )
                    )
                    del value[key]
                    quiet.add(here)
                elif isinstance(value[key], dict | list):
                    stack.append((value[key], child))
        elif isinstance(value, list):
            stack.extend(
                (item, (*here, index))
                for index, item in enumerate(value)
                if isinstance(item, dict | list)
            )
    return errors


def _merge_profiles(
    data: dict[str, Any], smap: SourceMap, file: str, errors: list[SourceError], quiet: set[Path]
) -> tuple[dict[str, Any], dict[Path, Path]]:
    """Overlay each device's `smtp` keys on its profile.

    Returns the merged data and, for keys that came from a profile, the profile path they
    came from (so an error in a profile value points at the profile's line).
    """
    from difflib import get_close_matches

    from fleet.yaml_source import format_path

    origins: dict[Path, Path] = {}
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        profiles = {}
    sites = data.get("sites")
    if not isinstance(sites, list):
        return data, origins
    for s, site in enumerate(sites):
        devices = site.get("devices") if isinstance(site, dict) else None
        if not isinstance(devices, list):
            continue
        for d, device in enumerate(devices):
            smtp = device.get("smtp") if isinstance(device, dict) else None
            if not isinstance(smtp, dict) or "profile" not in smtp:
                continue
            name = smtp["profile"]
            path: Path = ("sites", s, "devices", d, "smtp")
            if not isinstance(name, str) or name not in profiles:
                known = ", ".join(sorted(profiles)) or "none defined"
                hint = get_close_matches(str(name), list(profiles), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                errors.append(
                    SourceError(
                        file,
                        smap.find((*path, "profile")),
                        format_path((*path, "profile")),
                        f"unknown profile '{name}'{suggestion}; profiles: {known}",
                    )
                )
                quiet.add(path)
                continue
            profile = profiles[name]
            if not isinstance(profile, dict):
                continue
            merged = dict(profile)
            for key in profile:
                if key not in smtp:
                    origins[(*path, key)] = ("profiles", name, key)
            merged.update(smtp)
            # A profile's `verify` (the mailbox its copiers send to) is the device's own,
            # unless the device names one: it is not an SMTP setting.
            profile_verify = merged.pop("verify", None)
            if profile_verify is not None and "verify" not in device:
                device["verify"] = profile_verify
                origins[("sites", s, "devices", d, "verify")] = ("profiles", name, "verify")
            device["smtp"] = merged
    return data, origins


def _resolve_files(data: Any, base: FsPath, seen: dict[str, str] | None = None) -> None:
    """Make `*_file` paths absolute, relative to the inventory's folder."""
    seen = {} if seen is None else seen  # many devices name the same file: resolve it once
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _FILE_KEYS and isinstance(value, str) and value and "\x00" not in value:
                if value not in seen:
                    seen[value] = _resolve_file(value, base)
                data[key] = seen[value]
            elif isinstance(value, dict | list):
                _resolve_files(value, base, seen)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict | list):
                _resolve_files(item, base, seen)


def _resolve_file(value: str, base: FsPath) -> str:
    return str((base / os.path.expanduser(value)).resolve())


# Pydantic error types, re-worded for people who edit YAML rather than Python.
_TYPE_WORDS = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
}


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _model_keys(path: Path) -> list[str]:
    """The keys allowed at a path, for 'did you mean' hints."""
    from fleet.inventory_models import models

    model: type[BaseModel] | None = models().of(Inventory)
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            # dict-valued fields (profiles, codes) take arbitrary keys at this level
            return []
        model = _inner_model(field.annotation)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _translate(
    exc: ValidationError,
    smap: SourceMap,
    origins: dict[Path, Path],
    quiet: set[Path],
    file: str,
    prefix: Path,
    reported: list[SourceError],
) -> list[SourceError]:
    from difflib import get_close_matches

    from fleet.yaml_source import format_path

    errors: list[SourceError] = []
    for err in exc.errors():
        inner = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        loc: Path = (*prefix, *inner)
        kind = err["type"]
        inherited = origins.get(loc)
        if inherited is not None and format_path(inherited) in {e.path for e in reported + errors}:
            continue  # a bad value inherited from a profile is reported at the profile
        if kind in ("missing", "value_error") and any(loc[: len(q)] == q for q in quiet):
            continue
        got = err.get("input")
        last = loc[-1] if loc else ""
        source_loc = origins.get(loc, loc)
        if kind == "extra_forbidden":
            allowed = _model_keys(loc[:-1])
            hint = get_close_matches(str(last), allowed, n=1)
            message = f"unknown key '{last}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            if allowed:
                message += f"; allowed: {', '.join(allowed)}"
        elif kind == "missing":
            message = f"'{last}' is required"
            source_loc = loc[:-1]
        elif kind in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}, got '{got}'"
        elif kind == "string_type" and isinstance(got, bool | int | float | date):
            message = f"must be text, got {_unquoted(got)}; put the text in quotes"
        elif kind in _TYPE_WORDS:
            message = f"{_TYPE_WORDS[kind]}, got {_show(got)}"
        elif kind == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
        elif kind in ("too_short", "string_too_short"):
            message = "must not be empty"
        else:
            message = str(err["msg"])
        if isinstance(got, str) and len(got) > SHOWN_MAX:
            message = message.replace(got, _shown(got))
        if inherited is not None:
            # The profile allows it (`host: null` there means "no default"), the device not.
            message += f" (inherited from {format_path(inherited)})"
        position = smap.find(source_loc)
        errors.append(SourceError(file, position, format_path(loc), message))
    return errors


def _unquoted(value: bool | float | date) -> str:
    """What YAML made of an unquoted value where text belongs (`client: NO` is false)."""
    if isinstance(value, bool):
        return (
            f"{str(value).lower()}: YAML reads an unquoted yes, no, on, off, true or false "
            "as true or false"
        )
    what = "a date" if isinstance(value, date) else "a number"
    return f"{value}: YAML reads it unquoted as {what}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return str(value)


def _cross_checks(data: Any, smap: SourceMap, file: str) -> list[SourceError]:
    """Rules that span several values (unique ids, zones), checked on the raw data so they
    are reported even when other values are wrong."""
    from fleet.yaml_source import format_path

    errors: list[SourceError] = []

    def duplicates(items: Any, path: Path, key: str, what: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(items if isinstance(items, list) else []):
            value = item.get(key) if isinstance(item, dict) else None
            if not isinstance(value, str | int):
                continue
            value = str(value)
            here: Path = (*path, index, key)
            if value in seen:
                first = smap.find((*path, seen[value], key))
                line = f" (first at line {first.line})"
                errors.append(
                    SourceError(
                        file,
                        smap.find(here),
                        format_path(here),
                        f"duplicate {what} '{value}'{line}",
                    )
                )
            else:
                seen[value] = index

    sites = data.get("sites")
    duplicates(sites, ("sites",), "id", "site id")
    for s, site in enumerate(sites if isinstance(sites, list) else []):
        if isinstance(site, dict):
            duplicates(site.get("devices"), ("sites", s, "devices"), "id", "device id")
    duplicates(data.get("blocklists"), ("blocklists",), "zone", "blocklist zone")
    return errors


def preflight(inventory: Inventory, site_ids: set[str] | None = None) -> list[str]:
    """Problems that stop a sweep but not `validate`: unset or empty secrets, missing files.
    `site_ids` limits it to the sites a sweep selected; each keeps its place in the file."""
    problems = []
    for s, site in enumerate(inventory.sites):
        if site_ids is not None and site.id not in site_ids:
            continue
        for d, device in enumerate(site.devices):
            where = f"sites[{s}].devices[{d}] ({site.id}/{device.id}).smtp"
            smtp = device.smtp
            if smtp.ca_file and not os.path.isfile(smtp.ca_file):
                problems.append(f"{where}.ca_file: no such file: {smtp.ca_file}")
            if smtp.auth is not None:
                problems.extend(_secret_problems(f"{where}.auth", smtp.auth))
            imap = device.verify.imap if device.verify is not None else None
            if imap is not None:
                at = f"sites[{s}].devices[{d}] ({site.id}/{device.id}).verify.imap"
                if imap.oauth2 is not None:
                    problems.extend(_oauth2_problems(at, imap.oauth2))
                else:
                    problems.extend(
                        _source_problems(f"{at}.password", imap.password_env, imap.password_file)
                    )
                if imap.ca_file and not os.path.isfile(imap.ca_file):
                    problems.append(f"{at}.ca_file: no such file: {imap.ca_file}")
            graph = device.verify.graph if device.verify is not None else None
            if graph is not None:
                at = f"sites[{s}].devices[{d}] ({site.id}/{device.id}).verify.graph.oauth2"
                problems.extend(
                    _source_problems(
                        f"{at}.client_secret",
                        graph.oauth2.client_secret_env,
                        graph.oauth2.client_secret_file,
                    )
                )
    for z, zone in enumerate(inventory.blocklists):
        problems.extend(_source_problems(f"blocklists[{z}].key", zone.key_env, zone.key_file))
    return problems


def notification_problems(notifications: Notifications | None) -> list[str]:
    """Problems that stop sending alerts (checked only when alerts are asked for)."""
    problems = []
    email = notifications.email if notifications else None
    if email is not None:
        if email.ca_file and not os.path.isfile(email.ca_file):
            problems.append(f"notifications.email.ca_file: no such file: {email.ca_file}")
        if email.auth is not None:
            problems.extend(_secret_problems("notifications.email.auth", email.auth))
    webhook = notifications.webhook if notifications else None
    if webhook is not None:
        problems.extend(
            _source_problems("notifications.webhook.url", webhook.url_env, webhook.url_file)
        )
    return problems


def _secret_problems(where: str, auth: Auth) -> list[str]:
    if auth.oauth2 is not None:
        return _oauth2_problems(where, auth.oauth2)
    secret = auth.secret
    return _source_problems(f"{where}.password", secret.env, secret.file)


def _oauth2_problems(where: str, oauth2: OAuth2) -> list[str]:
    """A given token that cannot be read, or the app credential fleet fetches one with."""
    if oauth2.kind == "token":
        return _source_problems(f"{where}.oauth2.token", oauth2.token_env, oauth2.token_file)
    problems = []
    secret_source = oauth2.client_secret
    if secret_source is not None:
        problems += _source_problems(
            f"{where}.oauth2.client_secret", secret_source.env, secret_source.file
        )
    for key in ("certificate_file", "ca_file"):
        path = getattr(oauth2, key)
        if path is not None and not os.path.isfile(path):
            problems.append(f"{where}.oauth2.{key}: no such file: {path}")
    for key in ("private_key_file", "service_account_file"):  # they hold keys
        if getattr(oauth2, key) is not None and not os.path.isfile(getattr(oauth2, key)):
            problems.append(f"{where}.oauth2.{key}: {_MISSING_PATH_HIDDEN}")
    return problems


def app_credentials(oauth2: OAuth2) -> list[SecretSource]:
    """The app's own credential fleet fetches a token with: a client secret, key files."""
    sources = [] if oauth2.client_secret is None else [oauth2.client_secret]
    for key_file in (oauth2.private_key_file, oauth2.certificate_file, oauth2.service_account_file):
        if key_file is not None:
            sources.append(SecretSource(file=key_file))
    return sources


def _source_problems(where: str, env: str | None, file: str | None) -> list[str]:
    """An unset or empty variable, or a missing file (SecretSource.read would refuse them)."""
    if env is not None and not os.environ.get(env):
        return [f"{where}_env: {env} is not set in the environment (or is empty)"]
    if file is not None and not os.path.isfile(file):
        return [f"{where}_file: {_MISSING_PATH_HIDDEN}"]
    return []


# A missing file that should hold a secret: its path is not shown, since what was written
# there may be the secret itself (a password or a key pasted where its file belongs).
_MISSING_PATH_HIDDEN = (
    "no such file (the path is not shown: if the secret itself was written there, put it "
    "in a file and write that file's path)"
)


def inventory_schema() -> dict[str, Any]:
    """The inventory's JSON Schema, for editors that autocomplete YAML."""
    from fleet.inventory_models import schema

    return schema()
