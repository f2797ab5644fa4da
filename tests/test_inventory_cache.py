"""The cache of validated inventories (fleet.inventory_cache): an unchanged file comes back
as the same inventory it validated to, a changed one is parsed and reported as before, a cache
that cannot be used is a miss, and no secret is ever in it."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

from fleet import inventory as inventory_module
from fleet import inventory_cache
from fleet.inventory import Inventory, load_inventory
from fleet.lab.dns import LabDns

from .conftest import ROOT, M365Lab, fleet_env, run_fleet, run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

# Every kind of value an inventory validates to: profiles (one with a `verify` mailbox),
# shared SMTP settings, enums, a blocklist's code map, a DQS key file, OAuth2 of each
# provider, IMAP and Graph mailboxes, alerts, a SOCKS5 egress, per-site settings.
RICH = """\
defaults:
  dns: {nameservers: ["127.0.0.1:5353", "[::1]:53"], timeout_s: 2, tries: 3}
  public_ip_lookup: {}
  timeouts: {connect_s: 5.5, command_s: 30, site_s: 90}
  concurrency: {global: 50, per_site: 1}
  ehlo_name: Scanner.MSP.example.
blocklists:
  - {zone: zen.spamhaus.org, kind: spamhaus-zen}
  - zone: bl.example.test
    name: Example BL
    codes:
      127.0.0.2: {list: EXAMPLE, meaning: spam source}
      127.0.0.10: {list: EXAMPLE-DYN, meaning: dynamic range, severity: policy}
    delist: https://bl.example.test/remove
  - {kind: spamhaus-dqs, key_file: keys/dqs.key}
notifications:
  when: critical
  email:
    host: relay.msp.example
    auth: {username: alerts@msp.example, password_env: ALERT_PW}
    from: alerts@msp.example
    to: [noc@msp.example, oncall@msp.example]
    attach_csv: true
  webhook: {url_env: TEAMS_HOOK, format: teams}
profiles:
  direct: {host: contoso-com.mail.protection.outlook.com, port: 25}
  submission:
    host: smtp.office365.com
    port: 587
    verify:
      graph:
        mailbox: scans@contoso.example
        oauth2: {provider: microsoft, tenant_id: t1, client_id: c1, client_secret_file: app.secret}
sites:
  - id: hq
    client: Contoso
    name: Contoso HQ
    tags: [nightly, dental]
    egress: {via: "socks5://127.0.0.1:1080"}
    concurrency: {per_site: 1}
    timeouts: {site_s: 60}
    devices:
      - {id: mfp-1, model: Canon C3530, smtp: {profile: direct, from: a@contoso.example, to: b@contoso.example}}
      - {id: mfp-2, smtp: {profile: direct, from: a@contoso.example, to: b@contoso.example}}
      - id: mfp-3
        smtp:
          profile: submission
          auth: {username: scan@contoso.example, password_env: CONTOSO_PW, mechanism: login}
          from: scan@contoso.example
          to: scans@contoso.example
          tls_max: 1.2
          ca_file: ca.pem
  - id: branch
    client: Contoso
    egress: {bind: 127.0.0.21, ip: 203.0.113.9}
    devices:
      - {id: mfp-1, smtp: {profile: direct, from: a@contoso.example, to: b@contoso.example}}
      - id: mfp-2
        smtp:
          host: smtp.gmail.com
          port: 465
          security: tls
          auth: {username: scan@fabrikam.example, oauth2: {provider: google, service_account_file: sa.json}}
          from: scan@fabrikam.example
          to: scans@fabrikam.example
          mode: relay
      - id: mfp-3
        smtp:
          host: 127.0.0.1
          port: 2525
          security: none
          auth: {username: u@fabrikam.example, oauth2: {token_env: TOKEN}}
          from: u@fabrikam.example
          to: v@fabrikam.example
          tls_verify: false
        verify:
          imap: {host: imap.fabrikam.example, username: v@fabrikam.example, password_file: imap.pw}
          within_s: 30
"""


@pytest.fixture
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(inventory_cache.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files parse_inventory is called for (a cache hit calls it for none)."""
    called: list[str] = []
    parse = inventory_module.parse_inventory

    def counted(text: str, file: str, files: dict[str, str] | None = None) -> Inventory:
        called.append(file)
        return parse(text, file, files)

    monkeypatch.setattr(inventory_module, "parse_inventory", counted)
    return called


def rich_inventory(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_text("x")
    path = folder / "inventory.yaml"
    path.write_text(RICH, encoding="utf-8")
    return path


def structs_of(value: Any) -> Iterator[msgspec.Struct]:
    """Every inventory object in a tree, depth first."""
    if isinstance(value, msgspec.Struct):
        yield value
        for name in value.__struct_fields__:
            yield from structs_of(getattr(value, name))
    elif isinstance(value, list | dict):
        for item in value.values() if isinstance(value, dict) else value:
            yield from structs_of(item)


def shape(inventory: msgspec.Struct) -> list[tuple[str, dict[str, Any]]]:
    """What an inventory's tree is, beyond ==: each object's class, and each field's value
    and type (an enum member is not its text, a float not an int)."""
    return [
        (
            type(s).__qualname__,
            {
                name: (type(value).__name__, value)
                for name in s.__struct_fields__
                if not isinstance(value := getattr(s, name), msgspec.Struct | list | dict)
            },
        )
        for s in structs_of(inventory)
    ]


def test_a_hit_is_the_same_inventory_the_file_validated_to(
    tmp_path: Path, cache_folder: Path, parses: list[str]
) -> None:
    path = rich_inventory(tmp_path / "inv")
    parsed = load_inventory(str(path))  # a miss: parsed, validated, kept
    assert parses == [str(path)]
    assert len(list(cache_folder.glob("*.json"))) == 1
    cached = load_inventory(str(path))  # a hit
    assert parses == [str(path)]  # not parsed again
    assert cached == parsed
    assert shape(cached) == shape(parsed)
    assert msgspec.to_builtins(cached) == msgspec.to_builtins(parsed)
    assert cached.summary() == parsed.summary()
    assert list(cached.secret_sources()) == list(parsed.secret_sources())
    # A parse shares one validated object between devices with equal SMTP settings; a hit
    # decodes each device's own, equal to it
    hq = cached.sites[0].devices
    assert parsed.sites[0].devices[0].smtp is parsed.sites[1].devices[0].smtp
    assert hq[0].smtp == hq[1].smtp == cached.sites[1].devices[0].smtp
    # Files resolved against the inventory's folder, as a parse resolves them
    assert hq[2].smtp.ca_file == str(tmp_path / "inv" / "ca.pem")


def test_the_example_inventory_comes_back_the_same(cache_folder: Path, parses: list[str]) -> None:
    example = str(ROOT / "inventory.example.yaml")
    parsed = load_inventory(example)
    cached = load_inventory(example)
    assert parses == [example]
    assert shape(cached) == shape(parsed)


def typed(value: Any) -> Any:
    """An inventory's tree as plain data that tells apart what == does not: each object's
    class, each value's type (3 from 3.0, an enum member from its text), None from a value,
    and the order of a mapping's keys."""
    if isinstance(value, msgspec.Struct):
        fields = value.__struct_fields__
        return (type(value).__qualname__, tuple((n, typed(getattr(value, n))) for n in fields))
    if isinstance(value, list):
        return ("list", tuple(typed(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((typed(key), typed(item)) for key, item in value.items()))
    return (type(value).__qualname__, repr(value))  # repr: nan is equal to nan here


def bench_inventory(shape: str, sites: int, folder: Path) -> str:
    from bench.generate import Mix
    from bench.generate import inventory as generated

    ca = str(folder / "ca.pem")
    mix = Mix(sites, 1 if shape == "direct" else 5, shape)
    return generated(
        mix, mx_port=2525, submission_port=2587, mx_ca=ca, submission_ca=ca, nameserver="127.0.0.1"
    )


INFINITE = {  # .inf is a valid timeout (greater than 0); JSON has no infinity
    "site-timeout-inf": ("timeouts: {site_s: 60}", "timeouts: {site_s: .inf}"),
    "default-timeout-inf": ("site_s: 90", "site_s: .inf"),
}


@pytest.mark.parametrize(
    "name",
    ["example", "rich", *INFINITE, "bench-direct-10", "bench-direct-300", "bench-mixed-50"],
)
def test_whatever_the_cache_returns_is_what_a_fresh_parse_returns(
    tmp_path: Path, cache_folder: Path, name: str
) -> None:
    """parse -> cache -> load equals parse, type for type, for every kind of inventory: the
    example, the rich one (and with infinite timeouts), the bench's generated fleets."""
    folder = tmp_path / "inv"
    path = rich_inventory(folder)  # its folder has the files RICH names
    if name == "example":
        text = (ROOT / "inventory.example.yaml").read_text(encoding="utf-8")
    elif name.startswith("bench-"):
        _, shape, sites = name.split("-")
        text = bench_inventory(shape, int(sites), folder)
    else:
        old, new = INFINITE.get(name, ("", ""))
        assert old in RICH
        text = RICH.replace(old, new)
    path.write_text(text, encoding="utf-8")
    fresh = inventory_module.parse_inventory(text, str(path), {})
    first = load_inventory(str(path))  # a miss: parsed, and kept unless it cannot be
    again = load_inventory(str(path))  # a hit, or parsed again
    assert typed(first) == typed(fresh)
    assert typed(again) == typed(fresh)
    assert again == fresh
    kept = list(cache_folder.glob("*.json"))
    assert len(kept) == (0 if name in INFINITE else 1)  # kept unless it cannot read back


def test_a_one_byte_edit_that_breaks_the_file_is_reported_as_before(
    tmp_path: Path, cache_folder: Path
) -> None:
    path = rich_inventory(tmp_path / "inv")
    assert run_fleet("validate", str(path), env=cache_env(cache_folder)).code == 0
    assert run_fleet("validate", str(path), env=cache_env(cache_folder)).code == 0  # a hit
    broken = path.read_bytes().replace(b"bind: 127.0.0.21", b"bind: 127.0.0.2x")
    assert len(broken) == len(path.read_bytes())
    path.write_bytes(broken)
    with_cache = run_fleet("validate", str(path), env=cache_env(cache_folder))
    without = run_fleet("validate", str(path), env=cache_env("off"))
    assert with_cache.code == without.code == 3
    assert with_cache.stderr == without.stderr
    assert f"{path}:55:14: sites[1].egress.bind: must be an IP address, got '127.0.0.2x'" in (
        with_cache.stderr
    )
    assert "1 problem; nothing was probed" in with_cache.stderr


def test_the_commands_say_the_same_from_the_cache(tmp_path: Path, cache_folder: Path) -> None:
    path = rich_inventory(tmp_path / "inv")
    env = cache_env(cache_folder, CONTOSO_PW="x", ALERT_PW="x", TEAMS_HOOK="x", TOKEN="x")
    for argv in (["validate", str(path)], ["sweep", "-i", str(path), "--dry-run"]):
        off = run_fleet(*argv, env={**env, inventory_cache.CACHE_ENV: "off"})
        miss = run_fleet(*argv, env=env)
        hit = run_fleet(*argv, env=env)
        assert off.code == 0, off.stderr
        assert (off.code, off.stdout, off.stderr) == (miss.code, miss.stdout, miss.stderr)
        assert (off.code, off.stdout, off.stderr) == (hit.code, hit.stdout, hit.stderr)
    assert not list(tmp_path.glob("inv/*.db"))


def readable(run_stdout: str) -> str:
    """A scan's transcript without what differs from run to run: times, ids, clocks."""
    text = re.sub(r"\d+ ms\b", "N ms", run_stdout)
    text = re.sub(r"fleet sweep \S+ at [^:]+:\d\d UTC", "fleet sweep ID at TIME", text)
    return re.sub(r" +", " ", text)


async def test_a_scan_from_the_cache_says_what_a_scan_from_the_file_says(
    m365: M365Lab,
    lab_dns: LabDns,
    tmp_path: Path,
    write_inventory: Callable[..., Path],
) -> None:
    copier = device(m365.mx.port, m365.ca_file, host="localhost", to="alice@contoso.test")
    built = InventoryBuilder(defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=20))
    path = write_inventory(built.site("hq", copier, client="Contoso"))
    env = cache_env(tmp_path / "cache")
    runs = {
        name: await run_fleet_async("scan", "hq", "-i", str(path), "--no-store", env=environment)
        for name, environment in (
            ("off", {**env, inventory_cache.CACHE_ENV: "off"}),
            ("miss", env),
            ("hit", env),
        )
    }
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert {run.code for run in runs.values()} == {runs["off"].code}
    assert "hq: mfp -> localhost" in runs["off"].stdout, runs["off"].stderr
    expected = readable(runs["off"].stdout)
    assert readable(runs["miss"].stdout) == expected
    assert readable(runs["hit"].stdout) == expected
    assert runs["hit"].stderr == runs["off"].stderr


def cache_env(folder: Path | str, **extra: str) -> dict[str, str]:
    return fleet_env(**{inventory_cache.CACHE_ENV: str(folder)}, **extra)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "",
        lambda text: text[: len(text) // 2],
        lambda text: "not json\n" + text,
        lambda text: text.replace('"client":"Contoso"', '"owner":"Contoso"', 1),
        lambda text: text.replace('"id":"hq"', '"id":"hq","extra":1', 1),
        lambda text: text.replace('"security":"tls"', '"security":"ssl"', 1),
        lambda text: text.replace('"port":465', '"port":"465"', 1),
        lambda text: '"another key"\n' + text.split("\n", 1)[1],
        lambda text: text.replace('"client":"Contoso"', '"client":""', 1),
        lambda text: text.replace('"to":["noc@msp.example","oncall@msp.example"]', '"to":[]', 1),
    ],
    ids=[
        "empty",
        "cut",
        "garbage",
        "unknown-key",
        "extra-value",
        "wrong-enum",
        "wrong-type",
        "foreign-key",
        "empty-text",
        "empty-list",
    ],
)
def test_a_damaged_or_foreign_entry_is_a_miss_and_is_written_again(
    tmp_path: Path, cache_folder: Path, parses: list[str], damage: Callable[[str], str]
) -> None:
    path = rich_inventory(tmp_path / "inv")
    parsed = load_inventory(str(path))
    (entry,) = cache_folder.glob("*.json")
    damaged = damage(entry.read_text(encoding="utf-8"))
    assert damaged != entry.read_text(encoding="utf-8")
    entry.write_text(damaged, encoding="utf-8")
    again = load_inventory(str(path))
    assert parses == [str(path), str(path)]  # parsed again
    assert shape(again) == shape(parsed)
    assert shape(load_inventory(str(path))) == shape(parsed)  # ... and kept again
    assert len(parses) == 2


@pytest.mark.parametrize(
    "foreign", ["another-owner", "group-writable", "world-writable", "symbolic-link"]
)
def test_an_entry_another_user_could_have_written_is_a_miss(
    tmp_path: Path,
    cache_folder: Path,
    parses: list[str],
    monkeypatch: pytest.MonkeyPatch,
    foreign: str,
) -> None:
    """An entry is rebuilt without validation: in a cache folder others can write (a shared
    FLEET_INVENTORY_CACHE, /tmp), one planted with the right key (the inventory's bytes and
    fleet's source are readable) would send a device's `password_file` to any host."""
    path = rich_inventory(tmp_path / "inv")
    load_inventory(str(path))
    (entry,) = cache_folder.glob("*.json")
    planted = entry.read_text(encoding="utf-8").replace(
        '"contoso-com.mail.protection.outlook.com"', '"attacker.example"'
    )
    assert "attacker.example" in planted
    entry.write_text(planted, encoding="utf-8")
    if foreign == "another-owner":
        owner = entry.stat().st_uid
        monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    elif foreign == "symbolic-link":  # planted where it points (sticky /tmp: not replaceable)
        entry.rename(tmp_path / "planted.json")
        entry.symlink_to(tmp_path / "planted.json")
    else:
        entry.chmod(0o620 if foreign == "group-writable" else 0o602)
    again = load_inventory(str(path))
    assert len(parses) == 2  # parsed again, not taken from the planted entry
    assert again.sites[0].devices[0].smtp.host == "contoso-com.mail.protection.outlook.com"


def test_another_fleet_or_pydantic_is_a_miss(
    tmp_path: Path, cache_folder: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = rich_inventory(tmp_path / "inv")
    load_inventory(str(path))
    monkeypatch.setattr(inventory_cache, "FORMAT", inventory_cache.FORMAT + 1)
    load_inventory(str(path))
    assert len(parses) == 2


def test_a_file_path_that_now_resolves_elsewhere_is_a_miss(
    tmp_path: Path, cache_folder: Path, parses: list[str]
) -> None:
    path = rich_inventory(tmp_path / "inv")
    (tmp_path / "inv" / "ca.pem").unlink()
    (tmp_path / "inv" / "first.pem").write_text("x")
    (tmp_path / "inv" / "second.pem").write_text("x")
    (tmp_path / "inv" / "ca.pem").symlink_to("first.pem")
    first = load_inventory(str(path))
    assert first.sites[0].devices[2].smtp.ca_file == str(tmp_path / "inv" / "first.pem")
    (tmp_path / "inv" / "ca.pem").unlink()
    (tmp_path / "inv" / "ca.pem").symlink_to("second.pem")
    second = load_inventory(str(path))
    assert second.sites[0].devices[2].smtp.ca_file == str(tmp_path / "inv" / "second.pem")
    assert len(parses) == 2


def test_a_value_json_cannot_hold_is_parsed_every_time(
    tmp_path: Path, cache_folder: Path, parses: list[str]
) -> None:
    # JSON has no infinity (msgspec writes null): the entry would not read back as the
    # inventory it holds, so it is never kept and every load parses
    path = rich_inventory(tmp_path / "inv")
    path.write_text(RICH.replace("site_s: 90", "site_s: .inf"), encoding="utf-8")
    first = load_inventory(str(path))
    again = load_inventory(str(path))
    assert first.defaults.timeouts.site_s == again.defaults.timeouts.site_s == float("inf")
    assert len(parses) == 2


def test_the_cache_can_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str]
) -> None:
    monkeypatch.setenv(inventory_cache.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = rich_inventory(tmp_path / "inv")
    load_inventory(str(path))
    load_inventory(str(path))
    assert len(parses) == 2
    assert not (tmp_path / "xdg").exists()


def test_by_default_it_is_in_the_users_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(inventory_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_inventory(str(rich_inventory(tmp_path / "inv")))
    (entry,) = (tmp_path / "xdg" / "fleet" / "inventories").glob("*.json")
    assert entry.stat().st_mode & 0o077 == 0  # the user's own


def test_a_cache_folder_that_cannot_be_written_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(inventory_cache.CACHE_ENV, str(tmp_path / "a-file" / "cache"))
    path = rich_inventory(tmp_path / "inv")
    assert load_inventory(str(path)).summary() == load_inventory(str(path)).summary()
    assert len(parses) == 2


def test_no_secret_enters_the_cache(tmp_path: Path, cache_folder: Path) -> None:
    path = rich_inventory(tmp_path / "inv")
    canaries = {
        "CONTOSO_PW": "canary-password-5f1e",
        "ALERT_PW": "canary-alert-9a7c",
        "TEAMS_HOOK": "https://example.webhook.office.com/canary-hook-77d2",
        "TOKEN": "canary-token-c0ffee",
    }
    files = {"keys/dqs.key": "canary-dqs-3b8e", "app.secret": "canary-app-1d4f"}
    files |= {"sa.json": '{"private_key": "canary-key-e6a0"}', "imap.pw": "canary-imap-8c21"}
    for name, secret in files.items():
        (tmp_path / "inv" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "inv" / name).write_text(secret)
    env = cache_env(cache_folder, **canaries)
    for _ in range(2):  # written, then read
        assert run_fleet("validate", str(path), env=env).code == 0
        assert run_fleet("sweep", "-i", str(path), "--dry-run", env=env).code == 0
    stored = b"".join(entry.read_bytes() for entry in cache_folder.rglob("*"))
    assert stored  # the entry was written
    assert [s for s in [*canaries.values(), *files.values()] if s.encode() in stored] == []
    assert [s for s in ("canary", '"private_key"') if s.encode() in stored] == []


def test_the_fingerprint_covers_every_module_the_inventory_is_built_from() -> None:
    source = (ROOT / "fleet" / "inventory.py").read_text(encoding="utf-8")
    imported = {
        node.module.removeprefix("fleet.").replace(".", "/") + ".py"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fleet.")
    }
    assert imported - set(inventory_cache.RULE_MODULES) == set()
    assert "inventory.py" in inventory_cache.RULE_MODULES


def test_the_entry_is_the_inventory_as_json(tmp_path: Path, cache_folder: Path) -> None:
    text = textwrap.dedent(
        """\
        sites:
          - id: hq
            client: C
            devices: [{id: mfp, smtp: {host: 127.0.0.1, port: 25, from: a@b.test, to: c@d.test}}]
        """
    )
    (tmp_path / "inventory.yaml").write_text(text, encoding="utf-8")
    inventory = load_inventory(str(tmp_path / "inventory.yaml"))
    (entry,) = cache_folder.glob("*.json")
    body = entry.read_bytes().split(b"\n", 2)[2]
    device = json.loads(body)["sites"][0]["devices"][0]
    assert device["smtp"]["from"] == "a@b.test"  # the file's own keys
    assert device["smtp"]["port"] == 25
    assert "security" not in device["smtp"]  # a default (starttls) is left out
    assert shape(msgspec.json.decode(body, type=Inventory)) == shape(inventory)


def test_a_hit_loads_no_yaml_and_builds_no_validator(tmp_path: Path, cache_folder: Path) -> None:
    path = rich_inventory(tmp_path / "inv")
    code = textwrap.dedent(
        f"""
        import json, sys
        from fleet import inventory
        inventory.load_inventory({str(path)!r})
        models = sys.modules.get("fleet.inventory_models")
        built = sorted(m.__name__ for m in models.models().struct) if models else []
        print(json.dumps({{"yaml": "yaml" in sys.modules, "built": built}}))
        """
    )

    def run() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env=cache_env(cache_folder),
        )
        return dict(json.loads(done.stdout))

    miss = run()
    assert miss["yaml"] is True
    assert {"InventoryHead", "Site", "SmtpSettings"} <= set(miss["built"])
    assert run() == {"yaml": False, "built": []}  # a hit


def test_a_field_check_the_parse_could_not_make_is_refused_when_the_models_are_built() -> None:
    """pydantic ignores an `Annotated` marker it does not know: a constraint msgspec would
    check on a cache hit but a parse would not is an error, not a silent difference."""
    from fleet.inventory import Strict
    from fleet.inventory_models import Models

    class Ranged(Strict, frozen=True):
        count: Annotated[int, msgspec.Meta(ge=1)] = 1

    class Longer(Strict, frozen=True):
        text: Annotated[str, msgspec.Meta(min_length=1, max_length=9)] = "x"

    for kind in (Ranged, Longer):
        with pytest.raises(TypeError, match="no pydantic equivalent"):
            Models().of(kind)


@pytest.mark.skipif(sys.platform == "win32", reason="a file name that is not UTF-8 is POSIX's")
def test_an_inventory_whose_file_name_is_not_utf8_is_cached_too(
    tmp_path: Path, cache_folder: Path, parses: list[str]
) -> None:
    """A path's bytes that do not decode reach Python as surrogates (os.fsdecode): the
    entry's name is made from the path's bytes, not a crash ("internal error") before the
    inventory was even read."""
    folder = tmp_path / "inv"
    rich_inventory(folder)
    path = folder / os.fsdecode(b"inventory-\xff.yaml")
    path.write_text(RICH, encoding="utf-8")
    first = load_inventory(str(path))
    again = load_inventory(str(path))
    assert parses == [str(path)]  # the second came from the cache
    assert typed(again) == typed(first)
    command = [sys.executable, "-m", "fleet", "validate", str(path)]
    done = subprocess.run(command, capture_output=True, env=cache_env(cache_folder), check=False)
    assert done.returncode == 0, done.stderr  # bytes: the path in it is not UTF-8
    assert b"internal error" not in done.stderr


def inventory_classes() -> list[type[msgspec.Struct]]:
    """Every class an inventory is made of, found from Inventory's fields' types."""
    import typing

    found: list[type[msgspec.Struct]] = []
    todo: list[Any] = [Inventory]
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            if kind not in found:
                found.append(kind)
                todo.extend(typing.get_type_hints(kind).values())
        else:
            todo.extend(typing.get_args(kind))
    return found


def test_every_inventory_class_is_frozen_and_takes_no_unknown_key_parsed_or_cached(
    cache_folder: Path,
) -> None:
    from fleet.inventory import Strict
    from fleet.inventory_models import models

    classes = inventory_classes()
    assert len(classes) >= 20
    for kind in classes:
        assert issubclass(kind, Strict), kind
        config = kind.__struct_config__
        assert config.frozen, kind  # a hit's objects
        assert config.forbid_unknown_fields, kind
        model = models().of(kind).model_config  # a parse's validation
        assert model["frozen"], kind
        assert model["extra"] == "forbid", kind
    example = str(ROOT / "inventory.example.yaml")
    for inventory in (load_inventory(example), load_inventory(example)):  # parsed, then a hit
        with pytest.raises(AttributeError):
            inventory.sites[0].id = "elsewhere"  # type: ignore[misc]
