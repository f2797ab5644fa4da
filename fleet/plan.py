"""Inventory -> probe work: which conversations to have at each site, from where, and
which blocklist lookups to make, de-duplicated.

Two copiers at one site with the same host, port, security, login, sender, recipient
and TLS settings have the same conversation: it is had once and both get the result.
Blocklist lookups are per distinct egress IP across the whole sweep.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from fleet.credentials import SecretSource
from fleet.errors import PlanError
from fleet.inventory import Auth, BlocklistZone, Device, Inventory, Site, SmtpSettings
from fleet.oauth import TokenRequest
from fleet.oauth import token_request as oauth_token_request
from fleet.probes.dnsbl_zones import DQS_ZONE, KINDS, CodeMeaning, Zone
from fleet.probes.spec import ConversationSpec
from fleet.results import EgressTransport


# NamedTuples, not frozen dataclasses: Python 3.11 compiles six methods for each frozen
# dataclass at import (about 0.5 ms a class of a scan's start-up), a NamedTuple one.
class PlannedConversation(NamedTuple):
    spec: ConversationSpec
    devices: tuple[Device, ...]


class SitePlan(NamedTuple):
    site: Site
    conversations: tuple[PlannedConversation, ...]
    per_site: int
    per_host: int | None  # this site's own cap per destination host (None: only the sweep's)
    connect_s: float
    command_s: float
    site_s: float

    @property
    def transport(self) -> EgressTransport:
        return self.site.egress.transport

    @property
    def declared_ip(self) -> str | None:
        return self.site.egress.ip


class PlanCounts(NamedTuple):
    sites: int
    devices: int
    conversations: int
    zones: int
    declared_ips: int
    lookups: int  # known in advance: declared IPs x zones (observed IPs may add more)
    self_tests: int

    def line(self) -> str:
        return (
            f"{self.sites} sites, {self.devices} devices -> {self.conversations} SMTP conversations; "
            f"{self.declared_ips} declared egress IPs x {self.zones} blocklists = {self.lookups} "
            f"lookups (+{self.self_tests} self-test queries; IPs the servers echo may add more)"
        )


class SweepPlan(NamedTuple):
    inventory: Inventory
    sites: tuple[SitePlan, ...]
    zones: tuple[Zone, ...]
    filters: tuple[str, ...] = ()

    def counts(self) -> PlanCounts:
        declared = {s.declared_ip for s in self.sites if s.declared_ip}
        return PlanCounts(
            sites=len(self.sites),
            devices=sum(len(s.site.devices) for s in self.sites),
            conversations=sum(len(s.conversations) for s in self.sites),
            zones=len(self.zones),
            declared_ips=len(declared),
            lookups=len(declared) * len(self.zones),
            self_tests=2 * len(self.zones),
        )


def default_ehlo_name() -> str:
    """This machine's name, without asking DNS (a dry run sends nothing at all)."""
    name = socket.gethostname()
    return name if "." in name else f"{name}.local"


def conversation_key(smtp: SmtpSettings) -> tuple[object, ...]:
    """What makes two copiers' conversations the same one (then it is had once)."""
    auth = smtp.auth
    return (
        smtp.host,
        smtp.port,
        smtp.security,
        smtp.effective_mode,
        auth.username if auth else None,
        auth.mechanism if auth else None,
        # the same login with another secret (or OAuth) is another test of that login
        (auth.uses_password, auth.secret, auth.oauth2) if auth else None,
        smtp.from_,
        smtp.to,
        smtp.tls_max,
        smtp.tls_verify,
        smtp.ca_file,
        smtp.ehlo_name,
    )


def _spec(conversation_id: str, smtp: SmtpSettings, ehlo_name: str) -> ConversationSpec:
    auth = smtp.auth
    return ConversationSpec(
        id=conversation_id,
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        mode=smtp.effective_mode,
        mail_from=smtp.from_,
        rcpt_to=smtp.to,
        ehlo_name=smtp.ehlo_name or ehlo_name,
        username=auth.username if auth else None,
        mechanism=auth.mechanism if auth else None,
        secret=auth.secret if auth else None,
        oauth=bool(auth and auth.oauth2),
        token_request=token_request(auth) if auth else None,
        tls_max=smtp.tls_max,
        tls_verify=smtp.tls_verify,
        ca_file=smtp.ca_file,
    )


def token_request(auth: Auth) -> TokenRequest | None:
    """How fleet fetches this login's OAuth token (None: a password, or a given token)."""
    oauth2 = auth.oauth2
    if oauth2 is None or oauth2.kind == "token":
        return None
    return oauth_token_request(oauth2, auth.username)


def select_sites(
    inventory: Inventory,
    site_ids: tuple[str, ...] = (),
    client: str | None = None,
    tags: tuple[str, ...] = (),
) -> list[Site]:
    """The sites a sweep covers: all, or those matching every filter given."""
    known = {site.id for site in inventory.sites}
    missing = [s for s in site_ids if s not in known]
    if missing:
        raise PlanError(f"no such site: {', '.join(missing)}")
    chosen = []
    for site in inventory.sites:
        if site_ids and site.id not in site_ids:
            continue
        if client is not None and site.client.lower() != client.lower():
            continue
        if tags and not set(tags) & set(site.tags):
            continue
        chosen.append(site)
    if not chosen:
        raise PlanError("the filters select no site")
    return chosen


def zones_from_inventory(blocklists: list[BlocklistZone]) -> list[Zone]:
    """The inventory's blocklists with their meaning maps (inventory codes override)."""
    zones = []
    for entry in blocklists:
        defaults = KINDS[entry.kind]
        codes = dict(defaults.codes)
        for code, meaning in entry.codes.items():
            codes[code] = CodeMeaning(meaning.list, meaning.meaning, meaning.severity)
        key = None
        if entry.kind == "spamhaus-dqs":
            key = SecretSource(env=entry.key_env, file=entry.key_file)
            # The key goes in front of the zone only when querying: `<ip>.<key>.<zone>`.
            display = entry.zone or DQS_ZONE
        else:
            display = entry.zone or ""
        zones.append(
            Zone(
                display=display,
                name=entry.name or defaults.name or display,
                kind=entry.kind,
                codes=codes,
                delist=entry.delist or defaults.delist,
                key=key,
                spamhaus=defaults.spamhaus,
                ipv6=defaults.ipv6 if entry.ipv6 is None else entry.ipv6,
            )
        )
    return zones


def plan_sweep(
    inventory: Inventory,
    site_ids: tuple[str, ...] = (),
    client: str | None = None,
    tags: tuple[str, ...] = (),
    ehlo_name: str | None = None,
) -> SweepPlan:
    """Turn an inventory (optionally filtered) into de-duplicated probe work."""
    defaults = inventory.defaults
    name = ehlo_name or defaults.ehlo_name or default_ehlo_name()
    site_plans = []
    for site in select_sites(inventory, site_ids, client, tags):
        groups: dict[tuple[object, ...], list[Device]] = {}
        for device in site.devices:
            groups.setdefault(conversation_key(device.smtp), []).append(device)
        conversations = tuple(
            PlannedConversation(_spec(f"{site.id}#{n}", devices[0].smtp, name), tuple(devices))
            for n, devices in enumerate(groups.values(), start=1)
        )
        timeouts = site.timeouts
        site_plans.append(
            SitePlan(
                site=site,
                conversations=conversations,
                per_site=site.concurrency.per_site or defaults.concurrency.per_site,
                per_host=site.concurrency.per_host,
                connect_s=timeouts.connect_s or defaults.timeouts.connect_s,
                command_s=timeouts.command_s or defaults.timeouts.command_s,
                site_s=timeouts.site_s or defaults.timeouts.site_s,
            )
        )
    filters = [f"site={s}" for s in site_ids]
    if client:
        filters.append(f"client={client}")
    filters.extend(f"tag={t}" for t in tags)
    return SweepPlan(
        inventory=inventory,
        sites=tuple(site_plans),
        zones=tuple(zones_from_inventory(inventory.blocklists)),
        filters=tuple(filters),
    )


def describe(plan: SweepPlan) -> str:
    """What a sweep would probe, from where: the text of `fleet sweep --dry-run`."""
    counts = plan.counts()
    defaults = plan.inventory.defaults
    lines = [
        "fleet sweep --dry-run: nothing is sent.",
        counts.line(),
        f"concurrency: global {defaults.concurrency.global_}, per site {defaults.concurrency.per_site} "
        f"(unless a site overrides it), per host {defaults.concurrency.per_host}",
        "blocklists: "
        + (", ".join(f"{z.display} ({z.name})" for z in plan.zones) or "none configured"),
        "",
    ]
    for site_plan in plan.sites:
        site = site_plan.site
        egress = site.egress
        where = egress.via
        if egress.bind:
            where += f", from {egress.bind}"
        ip = f", expected IP {egress.ip}" if egress.ip else ", egress IP not declared"
        lines.append(f"{site.id} ({site.client}) via {where}{ip}")
        for planned in site_plan.conversations:
            spec = planned.spec
            login = f" as {spec.username}" if spec.username else ""
            if spec.token_request is not None:
                login += f" (oauth2: a token from {spec.token_request.describe()})"
            devices = ", ".join(d.id for d in planned.devices)
            lines.append(
                f"  {spec.mode.value:<11} {spec.host}:{spec.port} {spec.security.value}{login}: "
                f"{spec.mail_from} -> {spec.rcpt_to}  [{devices}]"
            )
    return "\n".join(lines)


def describe_test_message(plan: SweepPlan, *, verify: bool, keep: bool) -> str:
    """What `--send-test` (and `--verify-delivery`) would add, for `--dry-run`."""
    lines = [
        "--send-test: each conversation goes on past RCPT TO to DATA and sends one test "
        "message to its test recipient."
    ]
    if not verify:
        return "\n".join(lines)
    after = "kept there (--keep-test-messages)" if keep else "then deleted"
    lines.append(f"--verify-delivery: then each device below looks for it, {after}:")
    for site_plan in plan.sites:
        for device in site_plan.site.devices:
            if device.verify is None:
                lines.append(
                    f"  {site_plan.site.id}/{device.id}: no `verify` mailbox, not looked for"
                )
                continue
            check = device.verify
            if check.graph is not None:
                where = f"Microsoft Graph mailbox {check.graph.mailbox} at {check.graph.endpoint}"
            elif check.imap is not None:
                where = (
                    f"IMAP {check.imap.username} at {check.imap.host}:{check.imap.port} "
                    f"({check.imap.security})"
                )
            else:  # the inventory requires one of the two
                continue
            lines.append(
                f"  {site_plan.site.id}/{device.id}: {where}, for up to {check.within_s:g} s"
            )
    return "\n".join(lines)
