"""The offline demo: a small Microsoft 365-like lab on loopback, and an inventory of five
sites that each `bind` their own 127.0.0.x address, so each one looks different to the
servers, to the blocklist and to SPF.

- contoso-hq      Direct Send from an IP listed on the blocklist (XBL): the MX rejects it
                  at RCPT TO -> critical, DIRECT_SEND_DIRTY_IP
- contoso-branch  Direct Send from a dynamic (PBL) range, not yet rejected -> warn,
                  DIRECT_SEND_DYNAMIC_IP
- northwind       submission to a tenant with SMTP AUTH disabled -> critical, AUTH_DISABLED
- fabrikam        Direct Send from a clean IP, and submission with OAuth -> ok
- tailspin        Direct Send from a clean IP that the SPF record of tailspin.test does not
                  name (it ends in ~all) -> warn, SPF_NOT_AUTHORISED
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Mailbox, Tenant, m365_mx, m365_submission

ZONE = "zen.demo.test"
MX_HOST = "contoso-test.mail.protection.demo.test"
TAILSPIN_MX_HOST = "tailspin-test.mail.protection.demo.test"
SUBMISSION_HOST = "smtp.office365.demo.test"
PROVIDER_SPF = "spf.protection.outlook.demo.test"  # the mail provider's own SPF, to include
DIRTY_IP, DYNAMIC_IP, AUTH_OFF_IP, CLEAN_IP = "127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"
NOT_IN_SPF_IP = "127.0.0.24"

# What `fleet demo` says before the matrix.
INTRO = (
    "fleet demo: a Microsoft 365-like MX and submission endpoint, a blocklist and the DNS\n"
    "(MX, SPF) on 127.0.0.1; five sites, each sending from its own 127.0.0.x address.\n"
)

# Demo secrets: set in this process's environment only, as an MSP would set real ones.
DEMO_SECRETS = {
    "FLEET_DEMO_NORTHWIND_PASSWORD": "demo-password-northwind",
    "FLEET_DEMO_FABRIKAM_TOKEN": "demo-oauth-token-fabrikam",
}


@dataclass
class DemoLab:
    folder: Path
    dns: LabDns = field(default_factory=LabDns)
    servers: list[LabSmtpServer] = field(default_factory=list)
    inventory_path: Path | None = None

    async def start(self) -> Path:
        """Start the lab and write the demo inventory; returns the inventory's path."""
        certs = LabCertificates(self.folder)
        context = certs.server_context(MX_HOST, TAILSPIN_MX_HOST, SUBMISSION_HOST, "localhost")
        await self.dns.start()
        self.dns.blocklist(ZONE, {DIRTY_IP: ("127.0.0.4",), DYNAMIC_IP: ("127.0.0.10",)})
        for name in (MX_HOST, TAILSPIN_MX_HOST, SUBMISSION_HOST):
            self.dns.add(name, "A", "127.0.0.1")
        # Contoso's SPF names its offices' IPs: HQ's is authorised (and listed all the same).
        self.dns.add("contoso.test", "MX", f"0 {MX_HOST}")
        self.dns.add(
            "contoso.test",
            "TXT",
            f"v=spf1 ip4:{DIRTY_IP} ip4:{DYNAMIC_IP} ip4:{CLEAN_IP} include:{PROVIDER_SPF} -all",
        )
        # Tailspin's SPF names only its mail provider: the warehouse's IP is missing.
        self.dns.add("tailspin.test", "MX", f"0 {TAILSPIN_MX_HOST}")
        self.dns.add("tailspin.test", "TXT", f"v=spf1 include:{PROVIDER_SPF} ~all")
        self.dns.add(PROVIDER_SPF, "TXT", "v=spf1 ip4:127.0.0.192/26 -all")
        tenant = Tenant(
            accepted_domains={"contoso.test", "northwind.test", "fabrikam.test", "tailspin.test"},
            banned_ips={DIRTY_IP},
            mailboxes={
                "scanner@northwind.test": Mailbox(
                    password=DEMO_SECRETS["FLEET_DEMO_NORTHWIND_PASSWORD"],
                    behaviour="auth_disabled",
                ),
                "scanner@fabrikam.test": Mailbox(token=DEMO_SECRETS["FLEET_DEMO_FABRIKAM_TOKEN"]),
            },
        )
        mx = m365_mx(tenant, context)
        submission = m365_submission(tenant, context)
        self.servers = [mx, submission]
        for server in self.servers:
            await server.start()
        for key, value in DEMO_SECRETS.items():
            os.environ.setdefault(key, value)
        self.inventory_path = self.folder / "demo-inventory.yaml"
        self.inventory_path.write_text(
            demo_inventory(self.dns.nameserver, mx.port, submission.port, str(certs.ca_file)),
            encoding="utf-8",
        )
        return self.inventory_path

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()
        await self.dns.stop()


def demo_inventory(nameserver: str, mx_port: int, submission_port: int, ca_file: str) -> str:
    return f"""\
# The fleet demo lab: every server runs on loopback inside `fleet demo`.
defaults:
  dns: {{nameservers: ["{nameserver}"], timeout_s: 2, tries: 1}}
  timeouts: {{connect_s: 5, command_s: 5, site_s: 30}}
  concurrency: {{global: 20, per_site: 2, per_host: 10}}
  ehlo_name: scanner-host.msp.test
blocklists:
  - zone: {ZONE}
    kind: spamhaus-zen
    name: Spamhaus ZEN (demo zone)
profiles:
  contoso-direct-send: {{host: {MX_HOST}, port: {mx_port}, security: starttls, ca_file: "{ca_file}"}}
  m365-submission: {{host: {SUBMISSION_HOST}, port: {submission_port}, security: starttls, ca_file: "{ca_file}"}}
sites:
  - id: contoso-hq
    client: Contoso Dental
    name: Contoso HQ
    egress: {{bind: {DIRTY_IP}, ip: {DIRTY_IP}}}
    devices:
      - id: mfp-frontdesk
        model: Ricoh IM C3000
        location: Front desk
        smtp: {{profile: contoso-direct-send, from: scanner@contoso.test, to: frontdesk@contoso.test}}
      - id: mfp-backoffice
        model: Ricoh IM C3000
        location: Back office
        smtp: {{profile: contoso-direct-send, from: scanner@contoso.test, to: frontdesk@contoso.test}}
  - id: contoso-branch
    client: Contoso Dental
    name: Contoso Branch
    egress: {{bind: {DYNAMIC_IP}, ip: {DYNAMIC_IP}}}
    devices:
      - id: mfp-1
        model: Canon iR-ADV C5535
        location: Reception
        smtp: {{profile: contoso-direct-send, from: branch-scanner@contoso.test, to: branch@contoso.test}}
  - id: northwind
    client: Northwind Traders
    name: Northwind office
    egress: {{bind: {AUTH_OFF_IP}, ip: {AUTH_OFF_IP}}}
    devices:
      - id: konica-2f
        model: Konica Minolta bizhub C300i
        location: 2nd floor
        smtp:
          profile: m365-submission
          auth: {{username: scanner@northwind.test, password_env: FLEET_DEMO_NORTHWIND_PASSWORD}}
          from: scanner@northwind.test
          to: office@northwind.test
  - id: fabrikam
    client: Fabrikam Health
    name: Fabrikam clinic
    egress: {{bind: {CLEAN_IP}, ip: {CLEAN_IP}}}
    devices:
      - id: xerox-records
        model: Xerox AltaLink C8155
        location: Records
        smtp: {{profile: contoso-direct-send, from: records@contoso.test, to: frontdesk@contoso.test}}
      - id: sharp-lab
        model: Sharp MX-3071
        location: Lab
        smtp:
          profile: m365-submission
          auth: {{username: scanner@fabrikam.test, oauth2: {{token_env: FLEET_DEMO_FABRIKAM_TOKEN}}}}
          from: scanner@fabrikam.test
          to: lab@fabrikam.test
  - id: tailspin
    client: Tailspin Toys
    name: Tailspin warehouse
    egress: {{bind: {NOT_IN_SPF_IP}, ip: {NOT_IN_SPF_IP}}}
    devices:
      - id: brother-warehouse
        model: Brother MFC-L8900CDW
        location: Warehouse
        smtp: {{host: {TAILSPIN_MX_HOST}, port: {mx_port}, security: starttls, ca_file: "{ca_file}", from: scanner@tailspin.test, to: office@tailspin.test}}
"""
