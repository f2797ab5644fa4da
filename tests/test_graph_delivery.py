"""--verify-delivery through Microsoft Graph: the test message found in a Microsoft 365
mailbox without IMAP, with an app-only token from the lab's Entra ID-like endpoint
(fleet.oauth), against a loopback Graph that answers the message list and delete requests
as Microsoft documents them (tests/graph_server.py). Through the command line."""

from __future__ import annotations

import email
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.oauth import LabApp, LabTokenEndpoint
from tests.conftest import M365Lab, fleet_env, run_fleet_async
from tests.graph_server import GraphServer, GraphTenant
from tests.hostile import lab_inventory
from tests.inventory_builder import InventoryBuilder, device

TENANT = "00000000-0000-4000-8000-0000000000d1"
APP = "22222222-2222-4222-8222-000000000001"
APP_READ_ONLY = "22222222-2222-4222-8222-000000000002"
MAILBOX = "scans@contoso.test"
# What Exchange Online stamps (its header format as seen in real messages: no authserv-id)
PASS = (
    "spf=pass (sender IP is 127.0.0.1) smtp.mailfrom=fabrikam.test; dkim=none (message not "
    "signed) header.d=none;dmarc=bestguesspass action=none header.from=fabrikam.test;"
    "compauth=pass reason=109"
)
FAIL = (
    "spf=fail (sender IP is 127.0.0.1) smtp.mailfrom=spoofed.test; dkim=none (message not "
    "signed) header.d=none;dmarc=fail action=quarantine header.from=spoofed.test;"
    "compauth=fail reason=001"
)


@pytest.fixture
def token_endpoint(certs: LabCertificates) -> Iterator[LabTokenEndpoint]:
    endpoint = LabTokenEndpoint(certs.server_context("127.0.0.1"))
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def graph(
    m365: M365Lab, token_endpoint: LabTokenEndpoint, certs: LabCertificates
) -> Iterator[GraphServer]:
    """Graph for the tenant behind the m365 MX: what the MX accepts lands in MAILBOX, in
    the Inbox or in Junk Email as Exchange's filter would file it, or nowhere (dropped)."""

    def route(raw: bytes) -> tuple[str, str, list[tuple[str, str]]] | None:
        message = email.message_from_bytes(raw)
        if "dropped@" in str(message["To"]):
            return None
        if "spoofed.test" in str(message["From"]):
            return MAILBOX, "junkemail", [("Authentication-Results", FAIL)]
        return MAILBOX, "inbox", [("Authentication-Results", PASS)]

    tenant = GraphTenant(
        token_endpoint, {MAILBOX: []}, route, source=lambda: list(m365.mx.stats.messages)
    )
    server = GraphServer(tenant, certs.server_context("127.0.0.1"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def inventory(
    m365: M365Lab, graph: GraphServer, tokens: LabTokenEndpoint, lab_dns: LabDns, app: str
) -> InventoryBuilder:
    ca = m365.ca_file
    oauth2 = {
        "provider": "microsoft",
        "tenant_id": TENANT,
        "client_id": app,
        "client_secret_env": "FLEET_GRAPH_SECRET",
        "authority": tokens.authority,
        "ca_file": ca,
    }
    graph_mailbox = {
        "mailbox": MAILBOX,
        "endpoint": graph.endpoint,
        "ca_file": ca,
        "oauth2": oauth2,
    }

    def copier(name: str, sender: str, to: str, within_s: float) -> dict[str, Any]:
        entry = device(m365.mx.port, ca, ident=name, host="localhost", mail_from=sender, to=to)
        entry["verify"] = {"graph": graph_mailbox, "within_s": within_s}
        return entry

    return lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=30).site(
        "hq",
        copier("mfp-inbox", "scanner@fabrikam.test", MAILBOX, 20),
        # the same settings: one conversation, one test message, one look for both
        copier("mfp-twin", "scanner@fabrikam.test", MAILBOX, 20),
        copier("mfp-junk", "scanner@spoofed.test", MAILBOX, 20),
        copier("mfp-dropped", "scanner@fabrikam.test", "dropped@contoso.test", 2),
        client="Contoso",
    )


def store_text(folder: Path) -> str:
    """The SQLite store's files (database, WAL, shared memory) as one text."""
    return "".join(p.read_bytes().decode("latin-1") for p in folder.glob("fleet.db*"))


def by_device(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["device"]: d for s in result["sites"] for d in s["devices"]}


def flags(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for s in result["sites"] for f in s["flags"]}


async def test_graph_finds_inbox_junk_and_nothing_and_deletes_what_it_found(
    m365: M365Lab,
    graph: GraphServer,
    token_endpoint: LabTokenEndpoint,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given an app with Graph's Mail.ReadWrite application permission
    secret = f"Gr~{uuid.uuid4().hex}.Qz"
    token_endpoint.add_app(TENANT, LabApp(APP, secret=secret, roles=["Mail.ReadWrite"]))
    path = write_inventory(inventory(m365, graph, token_endpoint, lab_dns, APP))
    db = tmp_path / "fleet.db"
    # When the site is swept with a test message and delivery verification
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--send-test", "--verify-delivery", "--format", "json",
        "--quiet", "--db", str(db), env=fleet_env(FLEET_GRAPH_SECRET=secret),
    )  # fmt: skip
    assert run.stdout, run.stderr
    result = json.loads(run.stdout)
    devices = by_device(result)
    # Then the message Exchange filed in the Inbox is found there, with its verdicts
    inbox = devices["mfp-inbox"]["delivery"]
    assert inbox["method"] == "graph"
    assert (inbox["status"], inbox["folder"], inbox["spf"]) == ("inbox", "Inbox", "pass")
    assert inbox["compauth"] == "pass reason=109"
    assert inbox["deleted"] is True
    assert devices["mfp-twin"]["delivery"] == inbox
    # the one in Junk Email is a warning with its likely cause
    junk = devices["mfp-junk"]["delivery"]
    assert (junk["status"], junk["folder"], junk["spf"], junk["dmarc"]) == (
        "junk", "Junk Email", "fail", "fail",
    )  # fmt: skip
    found = flags(result)
    assert found["DELIVERED_TO_JUNK"]["devices"] == ["mfp-junk"]
    assert "SPF fail" in found["DELIVERED_TO_JUNK"]["evidence"]
    # the dropped one is not delivered (critical)
    assert devices["mfp-dropped"]["delivery"]["status"] == "not_delivered"
    assert found["NOT_DELIVERED"]["severity"] == "critical"
    assert run.code == 2
    # And both messages found were deleted through Graph, nothing else
    tenant = graph.tenant
    assert len(tenant.deleted) == 2
    assert tenant.mailboxes[MAILBOX] == []
    assert all(r.startswith(("GET /v1.0/users/", "DELETE /v1.0/users/")) for r in tenant.requests)
    # And neither the app's secret nor its Graph token appears in any output or the store
    tokens = list(token_endpoint.issued)
    assert tokens
    stored = store_text(tmp_path)
    for text in (run.stdout, run.stderr, stored):
        for value in (secret, *tokens):
            assert value not in text
            assert value[: len(value) // 2] not in text


async def test_an_app_without_mail_readwrite_is_unknown_not_delivered(
    m365: M365Lab,
    graph: GraphServer,
    token_endpoint: LabTokenEndpoint,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given an app that may send mail but not read mailboxes
    secret = f"Gr~{uuid.uuid4().hex}.Qz"
    token_endpoint.add_app(TENANT, LabApp(APP_READ_ONLY, secret=secret, roles=["Mail.Send"]))
    path = write_inventory(inventory(m365, graph, token_endpoint, lab_dns, APP_READ_ONLY))
    run = await run_fleet_async(
        "scan", "hq", "-i", str(path), "--send-test", "--verify-delivery", "--format", "json",
        "--quiet", "--no-store", env=fleet_env(FLEET_GRAPH_SECRET=secret),
    )  # fmt: skip
    result = json.loads(run.stdout)
    delivery = by_device(result)["mfp-inbox"]["delivery"]
    # Then fleet says it could not look, in Graph's words, and never claims "delivered"
    assert delivery["status"] == "unknown"
    assert "ErrorAccessDenied" in delivery["detail"]
    assert flags(result)["DELIVERY_UNKNOWN"]["severity"] == "unknown"
    assert result["sites"][0]["verdict"] != "ok"
