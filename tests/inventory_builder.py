"""Inventories for tests, built as data and written as YAML by the YAML library, instead of
YAML text pieced together by string concatenation (where one wrong indent is a different
inventory, and a value with a colon or a quote breaks it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.inventory import Inventory, parse_inventory
from fleet.lab.dns import LabDns


class _Dumper(yaml.SafeDumper):
    """Writes a dict used twice (one device at many sites) out each time, as a person
    would, not as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def lab_defaults(
    dns: LabDns,
    *,
    connect_s: float,
    command_s: float,
    site_s: float,
    dns_timeout_s: float = 0.5,
) -> dict[str, Any]:
    """`defaults` whose resolver is the lab DNS (never the system's), with these timeouts."""
    return {
        "dns": {"nameservers": [dns.nameserver], "timeout_s": dns_timeout_s, "tries": 1},
        "timeouts": {"connect_s": connect_s, "command_s": command_s, "site_s": site_s},
    }


def device(
    port: int,
    ca_file: str | None = None,
    *,
    ident: str = "mfp",
    host: str = "127.0.0.1",
    security: str | None = "starttls",
    mail_from: str = "scanner@contoso.test",
    to: str = "frontdesk@contoso.test",
    **smtp: Any,
) -> dict[str, Any]:
    """One copier with its SMTP settings (extra keyword arguments are more `smtp` keys;
    `security` None leaves the key out)."""
    settings: dict[str, Any] = {"host": host, "port": port}
    if security is not None:
        settings["security"] = security
    if ca_file is not None:
        settings["ca_file"] = ca_file
    settings.update({"from": mail_from, "to": to, **smtp})
    return {"id": ident, "smtp": settings}


def site(
    ident: str,
    *devices: dict[str, Any],
    client: str = "C",
    bind: str | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """One site; `bind` is its egress source address (more site keys as keywords)."""
    entry: dict[str, Any] = {"id": ident, "client": client}
    if bind is not None:
        entry["egress"] = {"bind": bind}
    entry.update(keys)
    entry["devices"] = list(devices)
    return entry


@dataclass
class InventoryBuilder:
    """`defaults`, `blocklists`, other top-level sections (`notifications`...) and `sites`,
    as the inventory file has them."""

    defaults: dict[str, Any] = field(default_factory=dict)
    blocklists: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    sites: list[dict[str, Any]] = field(default_factory=list)

    def site(
        self,
        ident: str,
        *devices: dict[str, Any],
        client: str = "C",
        bind: str | None = None,
        **keys: Any,
    ) -> InventoryBuilder:
        """Add a site; `bind` is its egress source address (more site keys as keywords)."""
        return self.add(site(ident, *devices, client=client, bind=bind, **keys))

    def add(self, *sites: dict[str, Any]) -> InventoryBuilder:
        """Add sites already built (see `site`)."""
        self.sites.extend(sites)
        return self

    def data(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.defaults:
            document["defaults"] = self.defaults
        if self.blocklists:
            document["blocklists"] = self.blocklists
        document.update(self.sections)
        document["sites"] = self.sites
        return document

    def yaml(self) -> str:
        # allow_unicode: a name in Polish or Japanese is written as itself, as a user would
        return yaml.dump(self.data(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    def write(self, path: Path) -> Path:
        path.write_text(self.yaml(), encoding="utf-8")
        return path

    def parse(self, name: str = "inventory.yaml") -> Inventory:
        return parse_inventory(self.yaml(), name)
