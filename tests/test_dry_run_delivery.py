"""`sweep --dry-run` says what --send-test and --verify-delivery would add: the DATA
stage, and where each device's test message would be looked for (and whether deleted)."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_fleet_async
from .inventory_builder import InventoryBuilder, device


async def test_a_dry_run_describes_the_test_message_and_where_it_is_looked_for(
    tmp_path: Path,
) -> None:
    imap = {
        "imap": {
            "host": "imap.contoso.test",
            "username": "frontdesk@contoso.test",
            "password_env": "FLEET_TEST_IMAP_PASSWORD",
        },
        "within_s": 90,
    }
    inventory = (
        InventoryBuilder()
        .site("hq", {**device(25, ident="mfp-a"), "verify": imap}, device(25, ident="mfp-b"))
        .write(tmp_path / "inventory.yaml")
    )
    args = ("sweep", "-i", str(inventory), "--dry-run")

    plain = await run_fleet_async(*args)
    assert plain.code == 0, plain.stderr
    assert "--send-test" not in plain.stdout

    sending = await run_fleet_async(*args, "--send-test")
    assert sending.code == 0, sending.stderr
    assert "goes on past RCPT TO to DATA" in sending.stdout
    assert "--verify-delivery" not in sending.stdout

    verifying = await run_fleet_async(*args, "--send-test", "--verify-delivery")
    assert verifying.code == 0, verifying.stderr
    out = verifying.stdout
    assert out.startswith("fleet sweep --dry-run: nothing is sent.")
    assert "looks for it, then deleted" in out
    assert (
        "hq/mfp-a: IMAP frontdesk@contoso.test at imap.contoso.test:993 (tls), for up to 90 s"
        in out
    )
    assert "hq/mfp-b: no `verify` mailbox, not looked for" in out

    keeping = await run_fleet_async(
        *args, "--send-test", "--verify-delivery", "--keep-test-messages"
    )
    assert "kept there (--keep-test-messages)" in keeping.stdout
