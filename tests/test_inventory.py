"""The inventory model: loading, profiles, derived modes, errors with file:line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory, parse_inventory, preflight
from fleet.results import Mode

from .conftest import ROOT, run_fleet

MINIMAL = """\
profiles:
  m365-submission: {host: smtp.office365.com, port: 587, security: starttls}
sites:
  - id: acme-hq
    client: Acme Dental
    egress: {via: direct, bind: 127.0.0.20, ip: 203.0.113.5}
    devices:
      - id: mfp-1
        smtp: {host: acme-test.mail.protection.outlook.com, port: 25, from: s@acme.test, to: f@acme.test}
      - id: mfp-2
        smtp:
          profile: m365-submission
          auth: {username: scanner@acme.test, password_env: ACME_PW}
          from: scanner@acme.test
          to: frontdesk@acme.test
          tls_max: 1.2
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml")
    return [str(e) for e in caught.value.errors]


def test_example_inventory_is_valid_and_realistic() -> None:
    inventory = load_inventory(str(ROOT / "inventory.example.yaml"))
    assert len({s.client for s in inventory.sites}) >= 3
    modes = {d.smtp.effective_mode for _, d in inventory.devices()}
    assert modes == {Mode.direct_send, Mode.relay, Mode.submission}
    assert inventory.summary().startswith("3 clients, 4 sites, 7 devices")


def test_profile_is_merged_and_device_keys_override_it() -> None:
    inventory = parse_inventory(
        MINIMAL.replace("tls_max: 1.2", "tls_max: 1.2\n          port: 25"), "inv.yaml"
    )
    smtp = inventory.sites[0].devices[1].smtp
    assert (smtp.host, smtp.port, smtp.profile) == ("smtp.office365.com", 25, "m365-submission")
    assert smtp.tls_max == "1.2"  # YAML's float 1.2 is the version it means


def test_modes_are_derived_from_port_and_auth() -> None:
    inventory = parse_inventory(MINIMAL, "inv.yaml")
    direct, submission = inventory.sites[0].devices
    assert direct.smtp.effective_mode is Mode.direct_send
    assert submission.smtp.effective_mode is Mode.submission
    relay = parse_inventory(MINIMAL.replace("port: 587", "port: 25"), "inv.yaml")
    assert relay.sites[0].devices[1].smtp.effective_mode is Mode.relay


def test_error_names_file_line_column_and_field() -> None:
    text = MINIMAL.replace("port: 25,", "port: 70000,")
    assert errors_of(text) == [
        "inv.yaml:9:61: sites[0].devices[0].smtp.port: must be 1-65535, got 70000"
    ]


def test_every_error_is_reported_not_just_the_first() -> None:
    text = MINIMAL.replace("port: 25,", "port: 70000,").replace("bind: 127.0.0.20", "bind: nope")
    text = text.replace("id: mfp-2", "id: mfp-1")
    found = errors_of(text)
    assert len(found) == 3
    assert any("egress.bind: must be an IP address, got 'nope'" in e for e in found)
    assert any("duplicate device id 'mfp-1' (first at line 8)" in e for e in found)


def test_a_literal_password_is_refused_with_advice() -> None:
    text = MINIMAL.replace("password_env: ACME_PW", "password: hunter2")
    (only,) = errors_of(text)
    assert only.startswith("inv.yaml:13:47: sites[0].devices[1].smtp.auth.password:")
    assert "use password_env" in only
    assert "hunter2" not in only


def test_unknown_key_suggests_the_right_one() -> None:
    (only,) = errors_of(
        MINIMAL.replace("client: Acme Dental", "client: Acme Dental\n    tagz: [x]")
    )
    assert "sites[0].tagz: unknown key 'tagz' (did you mean 'tags'?)" in only
    assert only.startswith("inv.yaml:6:5:")


def test_unknown_profile_names_the_known_ones() -> None:
    (only,) = errors_of(MINIMAL.replace("profile: m365-submission", "profile: m365-submision"))
    assert "unknown profile 'm365-submision' (did you mean 'm365-submission'?)" in only


def test_bad_yaml_names_the_position() -> None:
    (only,) = errors_of("sites:\n  - id: [unclosed\n")
    assert only.startswith("inv.yaml:3:")
    assert "not valid YAML" in only


def test_preflight_reports_unset_secrets_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = parse_inventory(MINIMAL, "inv.yaml")
    monkeypatch.delenv("ACME_PW", raising=False)
    assert preflight(inventory) == [
        "sites[0].devices[1] (acme-hq/mfp-2).smtp.auth.password_env: ACME_PW is not set in the "
        "environment (or is empty)"
    ]
    monkeypatch.setenv("ACME_PW", "")  # set but empty: no password either
    assert len(preflight(inventory)) == 1
    monkeypatch.setenv("ACME_PW", "s3cret-value")
    assert preflight(inventory) == []


def test_a_secret_pasted_into_a_file_key_is_not_shown_as_a_missing_path(tmp_path: Path) -> None:
    # Given a password and a private key pasted where their files' paths belong
    password = "Winter2026"
    key = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
    path = tmp_path / "inv.yaml"
    path.write_text(
        MINIMAL.replace("password_env: ACME_PW", f"password_file: {password}").replace(
            "port: 25, from: s@acme.test",
            "port: 587, security: starttls, auth: {username: s@acme.test, oauth2: {provider: "
            "microsoft, tenant_id: 00000000-0000-4000-8000-0000000000c1, client_id: "
            "11111111-1111-4111-8111-000000000001, certificate_file: app.pem, private_key_file: "
            f"'{key}'}}}}, from: s@acme.test",
        )
    )

    run = run_fleet("sweep", "-i", str(path), "--no-store")

    assert run.code == 3, run.stderr
    assert "nothing was probed" in run.stderr
    assert password not in run.stderr
    assert key not in run.stderr
    assert "smtp.auth.password_file: no such file (the path is not shown" in run.stderr
    assert "oauth2.private_key_file: no such file (the path is not shown" in run.stderr
    # a file that holds no secret is still named
    assert f"oauth2.certificate_file: no such file: {tmp_path / 'app.pem'}" in run.stderr


def test_relative_files_resolve_against_the_inventory_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "inv.yaml"
    path.write_text(MINIMAL.replace("tls_max: 1.2", "tls_max: 1.2\n          ca_file: ca.pem"))
    inventory = load_inventory(str(path))
    assert inventory.sites[0].devices[1].smtp.ca_file == str(tmp_path / "ca.pem")


def test_validate_command_summarises_and_exits_0() -> None:
    run = run_fleet("validate", str(ROOT / "inventory.example.yaml"))
    assert run.code == 0, run.stderr
    assert (
        "valid: 3 clients, 4 sites, 7 devices (direct_send 3, relay 1, submission 3)" in run.stdout
    )


def test_validate_takes_the_inventory_option_and_env(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(MINIMAL)
    assert run_fleet("validate", "-i", str(path)).code == 0
    from .conftest import fleet_env

    assert run_fleet("validate", env=fleet_env(FLEET_INVENTORY=str(path))).code == 0
    missing = run_fleet("validate", cwd=tmp_path / "..")
    assert missing.code == 3
    assert "inventory.yaml: no such file" in missing.stderr


def test_validate_exits_3_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        MINIMAL.replace("port: 25,", "port: 70000,").replace("bind: 127.0.0.20", "bind: nope")
    )
    run = run_fleet("validate", str(path))
    assert run.code == 3
    assert f"{path}:9:61: sites[0].devices[0].smtp.port: must be 1-65535, got 70000" in run.stderr
    assert "egress.bind" in run.stderr
    assert "2 problems; nothing was probed" in run.stderr
    assert "Traceback" not in run.stderr


WINDOWS_CLIENT = MINIMAL.replace("client: Acme Dental", "client: M\u00fcller Z\u00fcrich AG")


@pytest.mark.parametrize(
    "encoded",
    [
        # PowerShell 5.1's Out-File and `>`: UTF-16 LE with a byte order mark
        "\ufeff".encode("utf-16-le") + WINDOWS_CLIENT.encode("utf-16-le"),
        "\ufeff".encode("utf-16-be") + WINDOWS_CLIENT.encode("utf-16-be"),
        WINDOWS_CLIENT.encode("utf-16-le"),  # no byte order mark
        WINDOWS_CLIENT.encode("utf-16-be"),
        WINDOWS_CLIENT.replace("\n", "\r\n").encode("utf-8-sig"),  # Notepad's "UTF-8 with BOM"
    ],
    ids=["utf-16-le-bom", "utf-16-be-bom", "utf-16-le", "utf-16-be", "utf-8-bom-crlf"],
)
def test_an_inventory_saved_as_utf16_by_windows_tools_is_read(
    encoded: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(encoded)

    run = run_fleet("validate", str(path))

    assert run.code == 0, run.stderr
    assert load_inventory(str(path)).sites[0].client == "M\u00fcller Z\u00fcrich AG"


def test_an_inventory_in_a_windows_code_page_names_the_line_and_says_save_as_utf8(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(WINDOWS_CLIENT.encode("cp1252"))  # Notepad's "ANSI"

    run = run_fleet("validate", str(path))

    assert run.code == 3
    assert run.stderr.splitlines()[0] == (
        f"{path}:5:14: not UTF-8 (byte 0xfc): save the file as UTF-8 "
        "(Notepad: Save as, Encoding UTF-8; PowerShell: Out-File -Encoding utf8)"
    )
    assert "Traceback" not in run.stderr


def test_a_huge_value_is_not_echoed_whole(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    huge = "mail-" * 1_000_000  # 5 MB pasted where a host name belongs
    path.write_text(MINIMAL.replace("acme-test.mail.protection.outlook.com", huge))

    run = run_fleet("validate", str(path))

    assert run.code == 3
    assert len(run.stderr) < 1000
    assert run.stderr.startswith(
        f"{path}:9:16: sites[0].devices[0].smtp.host: must be a host name or IP address, "
        f"got '{huge[:79]}… (5,000,000 characters)'"
    )


def test_scan_of_a_sound_site_still_refuses_an_inventory_broken_elsewhere(
    tmp_path: Path,
) -> None:
    # "A bad inventory stops everything before anything is sent": a scan validates the
    # whole file, not only the site it probes (a faster scan must not trade this away).
    path = tmp_path / "inv.yaml"
    broken = (
        "  - id: acme-branch\n    client: Acme Dental\n    egress: {bind: nope}\n"
        "    devices:\n      - id: mfp\n"
        "        smtp: {host: 127.0.0.1, port: 9, from: s@acme.test, to: f@acme.test}\n"
    )
    path.write_text(MINIMAL.replace("sites:\n", "sites:\n" + broken, 1))
    run = run_fleet("scan", "acme-hq", "-i", str(path), "--no-store")
    assert run.code == 3
    assert "sites[0].egress.bind" in run.stderr
    assert "1 problem; nothing was probed" in run.stderr
    assert run.stdout == ""


def test_schema_is_json_schema_with_the_contract_keys() -> None:
    run = run_fleet("schema")
    assert run.code == 0
    schema = json.loads(run.stdout)
    assert set(schema["properties"]) >= {"defaults", "profiles", "blocklists", "sites"}
    smtp = schema["$defs"]["SmtpSettings"]["properties"]
    assert {"host", "port", "security", "auth", "from", "to", "tls_max", "ca_file"} <= set(smtp)
