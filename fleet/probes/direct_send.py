"""Direct Send readiness of a site: does each copier that sends unauthenticated on port 25
talk to the right MX, and does the sender domain's SPF authorise the site's egress IP?

Which devices: Direct Send, and relay without a login (a connector relay), the copiers whose
mail a receiver judges by the site's IP. An authenticated relay hands its mail to a smarthost
whose own IP and name are what count, so it is not checked here.

MX: a Direct Send copier must send to the MX of its recipient's domain (Direct Send only
reaches the tenant's own mailboxes); a connector relay to the MX of its sender's domain (the
tenant it relays through). A copier set to an IP address is a mismatch even when the address
is right today: Microsoft moves its MX addresses without notice.

SPF: one result per (sender domain, egress IP) per sweep, kept for every site and device
that needs it (a second one only when the record's macros read the sender or HELO), each
DNS question asked once.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from fleet.dns import Dns, Outcome
from fleet.net import is_ip, unmapped
from fleet.probes.spf import DEFAULT_BUDGET_S, SpfEvaluation, evaluate
from fleet.results import DirectSendCheck, Mode, MxCheck, MxResult, SpfCheck, SpfResult


class DirectSendTarget(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
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
    """SPF results of one sweep, each (domain, ip) kept once evaluated, whoever asks.

    No task is shared per evaluation: an evaluation is a replay of check_host() over the
    answers the sweep has (the resolver shares each question), so an asker that comes while
    another evaluates the same (domain, ip) evaluates it too, from the same answers, to the
    same result (issue 20: the shared task cost more than the evaluation)."""

    def __init__(self, dns: Dns, budget_s: float = DEFAULT_BUDGET_S) -> None:
        self.dns = dns
        self.budget_s = budget_s
        self._asked: set[tuple[str, ...]] = set()
        self._done: dict[tuple[str, ...], SpfEvaluation] = {}

    @property
    def evaluations(self) -> int:
        """How many (domain, ip[, sender, helo]) the sweep evaluated."""
        return len(self._asked)

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
        done = self._done.get(key)
        if done is not None:
            return done
        self._asked.add(key)
        evaluation = await evaluate(self.dns, domain, ip, sender, helo, budget_s=self.budget_s)
        return self._done.setdefault(key, evaluation)


class DirectSendProbe:
    """The MX and SPF checks of a sweep, on its shared resolver."""

    def __init__(self, dns: Dns, spf_budget_s: float = DEFAULT_BUDGET_S) -> None:
        self.dns = dns
        self.spf = SpfEvaluations(dns, spf_budget_s)

    async def check(self, targets: list[DirectSendTarget], ips: list[str]) -> list[DirectSendCheck]:
        """Per device: its MX check, then its SPF check for each egress IP (in that order)."""
        if len(targets) == 1:
            # The common case (issue 20): one copier. Its domain's MX is asked ahead (when
            # no site has asked it yet) and its SPF checked meanwhile: the two questions are
            # in flight together as in the task group below, without one.
            target = targets[0]
            self.dns.ask_ahead(target.mx_domain, "MX")
            spf_checks = await self.spf_check(target, ips)
            return [await self.mx(target), *spf_checks]
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
