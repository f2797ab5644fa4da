"""Secret files as Windows and its tools write them: UTF-16 (PowerShell 5.1's `>` and
Out-File), UTF-8 with a byte order mark (old Notepad, Set-Content -Encoding utf8), and a file
that is no text at all (one Latin-1 byte). Swept against the lab's Microsoft 365 submission
endpoint, which knows each mailbox's password."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fleet.lab.dns import LabDns
from fleet.lab.smtp import Mailbox

from .conftest import M365Lab, fleet_env, run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

PASSWORD = "Copier-Pass12"


def login_site(
    inventory: InventoryBuilder, site_id: str, m365: M365Lab, user: str, password_file: Path
) -> None:
    copier = device(
        m365.submission.port,
        m365.ca_file,
        host="localhost",
        mail_from=user,
        to="alice@contoso.test",
        auth={"username": user, "password_file": str(password_file)},
    )
    inventory.site(site_id, copier, client="Files")


async def test_a_secret_file_in_utf16_or_with_a_bom_is_read_and_one_that_is_not_text_costs_its_site_only(
    m365: M365Lab, lab_dns: LabDns, tmp_path: Path, write_inventory: Callable[..., Path]
) -> None:
    # Given: three mailboxes with the same password, written to a file three ways
    files = {
        "utf16": ("utf16@contoso.test", ("\ufeff" + PASSWORD + "\r\n").encode("utf-16-le")),
        "bom": ("bom@contoso.test", ("\ufeff" + PASSWORD + "\r\n").encode("utf-8")),
        "plain": ("plain@contoso.test", (PASSWORD + "\n").encode("utf-8")),
    }
    # ... and a fourth whose file holds one Latin-1 byte: it is not UTF-8 and has no BOM
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Passw\u00f6rd\n".encode("latin-1"))
    inventory = InventoryBuilder(
        defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=20)
    )
    for site_id, (user, content) in files.items():
        m365.tenant.mailboxes[user] = Mailbox(password=PASSWORD)
        path = tmp_path / f"{site_id}.txt"
        path.write_bytes(content)
        path.chmod(0o600)
        login_site(inventory, site_id, m365, user, path)
    latin1.chmod(0o600)
    m365.tenant.mailboxes["latin1@contoso.test"] = Mailbox(password="Passw\u00f6rd")
    login_site(inventory, "latin1", m365, "latin1@contoso.test", latin1)
    path = write_inventory(inventory.yaml())

    # When the inventory is swept
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(path),
        "--db",
        str(tmp_path / "fleet.db"),
        "-q",
        "--format",
        "json",
        env=fleet_env(),
        cwd=tmp_path,
    )

    # Then the sweep ran to its end: no internal error, every site in the report
    assert "internal error" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads(run.stdout)
    sites = {s["site"]: s for s in report["sites"]}
    assert set(sites) == {"utf16", "bom", "plain", "latin1"}
    # ... the UTF-16 and BOM files logged in as the plain one does (the BOM is no part of
    # the password)
    for site_id in ("utf16", "bom", "plain"):
        (copier,) = sites[site_id]["devices"]
        assert copier["category"] == "ok", (site_id, copier["finding"])
    # ... and the file that is not text is reported on its own site, by name
    bad = json.dumps(sites["latin1"])
    assert sites["latin1"]["devices"][0]["category"] == "auth_failed"
    assert "could not read the secret" in bad
    assert str(latin1) in bad
    assert m365.submission.stats.auth_attempts == 3  # the unreadable secret was never sent
