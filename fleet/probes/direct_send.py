"""Direct Send readiness of a site: does each copier that sends unauthenticated on port 25
talk to the right MX, and does the sender domain's SPF authorise the site's egress IP?

Which devices: Direct Send, and relay without a login (a connector relay), the copiers whose
mail a receiver judges by the site's IP. An authenticated relay hands its mail to a smarthost
whose own IP and name are what count, so it is not checked here.

MX: a Direct Send copier must send to the MX of its recipient's domain (Direct Send only
reaches the tenant's own mailboxes); a connector relay to the MX of its sender's domain (the
tenant it relays through). A copier set to an IP address is a mismatch even when the address
is right today: Microsoft moves its MX addresses without notice.

SPF: one evaluation per (sender domain, egress IP) per sweep, shared by every site and
device that needs it (a second one only when the record's macros read the sender or HELO).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fleet.dns import Dns, Outcome
from fleet.net import is_ip, unmapped
from fleet.once import Once
from fleet.probes.spf import DEFAULT_BUDGET_S, SpfEvaluation, evaluate, evaluate_known
from fleet.results import DirectSendCheck, Mode, MxCheck, MxResult, SpfCheck, SpfResult


@dataclass(frozen=True)
class DirectSendTarget:
    """One copier that sends unauthenticated on port 25, as configured."""

    device: str
    mode: Mode
    host: str
    sender: str
    recipient: str
    helo: str

    @property
    def mx_domain(self) -> str:
        address = self.recipient if self.mode is Mode.direct_send else self.sender
        return domain_of(address)

    @property
    def sender_domain(self) -> str:
        return domain_of(self.sender)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


class SpfEvaluations:
    """SPF results of one sweep, each (domain, ip) evaluated once, whoever asks."""

    def __init__(self, dns: Dns, budget_s: float = DEFAULT_BUDGET_S) -> None:
        self.dns = dns
        self.budget_s = budget_s
        self.evaluations = 0  # how many check_host() runs the sweep needed
        self._evaluations: Once[tuple[str, ...], SpfEvaluation] = Once()
        self._known: dict[tuple[str, ...], SpfEvaluation] = {}  # evaluated without waiting

    async def get(self, domain: str, ip: str, sender: str, helo: str) -> SpfEvaluation:
        domain = domain.lower().rstrip(".")
        first = await self._run((domain, ip), domain, ip, sender, helo)
        if not first.uses_sender or (first.sender, first.helo) == (sender.lower(), helo.lower()):
            return first
        # Its macros read the sender or HELO: this sender gets an evaluation of its own.
        return await self._run((domain, ip, sender.lower(), helo.lower()), domain, ip, sender, helo)

    async def _run(
        self, key: tuple[str, ...], domain: str, ip: str, sender: str, helo: str
    ) -> SpfEvaluation:
        known = self._known.get(key)
        if known is not None:
            return known
        if key not in self._evaluations:
            self.evaluations += 1
            # Most evaluations need only answers the sweep already has (the domain's record,
            # read for an earlier site): done at once, with no task or timer (issue 20).
            known = evaluate_known(self.dns, domain, ip, sender, helo)
            if known is not None:
                self._known[key] = known
                return known
        return await self._evaluations.get(
            key, lambda: evaluate(self.dns, domain, ip, sender, helo, budget_s=self.budget_s)
        )


class DirectSendProbe:
    """The MX and SPF checks of a sweep, on its shared resolver."""

    def __init__(self, dns: Dns, spf_budget_s: float = DEFAULT_BUDGET_S) -> None:
        self.dns = dns
        self.spf = SpfEvaluations(dns, spf_budget_s)

    async def check(self, targets: list[DirectSendTarget], ips: list[str]) -> list[DirectSendCheck]:
        """Per device: its MX check, then its SPF check for each egress IP (in that order)."""
        if len(targets) == 1 and self.dns.answered(targets[0].mx_domain, "MX") is not None:
            # The common case (issue 20): one copier, its domain's MX already answered for
            # another site. The MX check then needs no wait, so nothing runs beside the SPF
            # check: no tasks for it.
            target = targets[0]
            return [await self.mx(target), *await self.spf_check(target, ips)]
        async with asyncio.TaskGroup() as group:
            mx = [group.create_task(self.mx(t)) for t in targets]
            spf = [group.create_task(self.spf_check(t, ips)) for t in targets]
        out: list[DirectSendCheck] = []
        for mx_check, per_ip in zip(mx, spf, strict=True):
            out.append(mx_check.result())
            out.extend(per_ip.result())
        return out

    async def mx(self, target: DirectSendTarget) -> MxCheck:
        domain = target.mx_domain
        host = target.host.lower().rstrip(".")
        answer = await self.dns.query(domain, "MX")

        def check(result: MxResult, detail: str, hosts: list[str] | None = None) -> MxCheck:
            return MxCheck(
                device=target.device,
                domain=domain,
                result=result,
                detail=detail,
                host=host,
                mx_hosts=hosts or [],
            )

        if answer.outcome in (Outcome.nxdomain, Outcome.nodata):
            return check(MxResult.none, f"{domain} publishes no MX record ({answer.detail})")
        if not answer.ok:
            return check(MxResult.unknown, f"MX lookup of {domain}: {answer.detail}")
        hosts = list(dict.fromkeys(r.exchange for r in sorted(answer.mx) if r.exchange))
        if not hosts:
            return check(MxResult.none, f"{domain} publishes a null MX: it accepts no mail")
        current = ", ".join(hosts)
        if is_ip(host):
            return check(
                MxResult.mismatch,
                f"the copier sends to the IP address {host}, not to the MX of {domain} "
                f"({current}) by name",
                hosts,
            )
        if host in hosts:
            return check(MxResult.match, f"{host} is an MX of {domain}", hosts)
        return check(
            MxResult.mismatch,
            f"the copier sends to {host}, but the MX of {domain} is {current}",
            hosts,
        )

    async def spf_check(self, target: DirectSendTarget, ips: list[str]) -> list[SpfCheck]:
        domain = target.sender_domain
        if not ips:
            return [
                SpfCheck(
                    device=target.device,
                    domain=domain,
                    result=SpfResult.unknown,
                    detail="the site's public IP is not known (not declared, and no server "
                    "echoed it): SPF could not be checked",
                )
            ]
        if len(ips) == 1:  # the common case: no task to gather
            evaluation = await self.spf.get(domain, ips[0], target.sender, target.helo)
            return [_spf_check(target.device, evaluation)]
        evaluations = await asyncio.gather(
            *(self.spf.get(domain, ip, target.sender, target.helo) for ip in ips)
        )
        return [_spf_check(target.device, e) for e in evaluations]


def _spf_check(device: str, evaluation: SpfEvaluation) -> SpfCheck:
    authorised = evaluation.result is SpfResult.pass_
    version = unmapped(evaluation.ip).version  # an address already unmapped: parsed once
    return SpfCheck(
        device=device,
        domain=evaluation.domain,
        ip=evaluation.ip,
        result=evaluation.result,
        detail=evaluation.detail,
        record=evaluation.record,
        mechanism=evaluation.mechanism,
        lookups=evaluation.lookups,
        add=None if authorised else f"ip{version}:{evaluation.ip}",
    )
