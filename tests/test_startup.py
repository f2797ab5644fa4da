"""Start-up: `fleet --version` and `fleet --help` load click and nothing heavy, `fleet
validate` loads the inventory's modules and not the probes, the store, the reports or the
HTTP and server libraries (issue 20). The times themselves are measured by bench/run.py;
here, what each command loads, which does not depend on how busy the machine is.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from fleet.cli import cli
from fleet.cli.lazy import COMMANDS
from fleet.lab.dns import LabDns

from .conftest import M365Lab, fleet_env, run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

# Heavy for a command that does not need them: pydantic's model building, the resolver,
# HTTP clients and servers, crypto, templates, the event loop.
HEAVY = (
    "pydantic",
    "fleet.inventory",
    "fleet.results",
    "aiodns",
    "aiosmtplib",
    "httpx",
    "starlette",
    "uvicorn",
    "cryptography",
    "jinja2",
    "asyncio",
)
# Not needed to validate an inventory.
NOT_FOR_VALIDATE = (
    "aiodns",
    "aiosmtplib",
    "httpx",
    "starlette",
    "uvicorn",
    "jinja2",
    "fleet.runner",
    "fleet.probes.smtp",
    "fleet.classify",
    "fleet.judgement.catalogue",
    "fleet.store",
    "fleet.report.html",
    "fleet.serve",
    "fleet.push",
)


def loaded_after(*argv: str) -> tuple[set[str], str]:
    """Run the command line in a fresh interpreter; the modules it loaded, and its stdout."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from fleet.cli import main
        try:
            main({list(argv)!r})
        except SystemExit:
            pass
        sys.stdout.flush()
        print("\\n" + json.dumps(sorted(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    output, _, modules = done.stdout.rstrip("\n").rpartition("\n")
    return set(json.loads(modules)), output


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("-h",)])
def test_version_and_help_load_nothing_heavy(argv: tuple[str, ...]) -> None:
    modules, output = loaded_after(*argv)
    assert output.strip()
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []
    assert not {m for m in modules if m.startswith("fleet.cli.") and m != "fleet.cli.app"} - {
        "fleet.cli.lazy"
    }


def one_copier() -> InventoryBuilder:
    """One site, one copier (its port is all the probes would need)."""
    mfp = device(
        2525, host="localhost", security=None, mail_from="a@contoso.test", to="b@contoso.test"
    )
    return InventoryBuilder().site("hq", mfp, client="Contoso")


def test_validate_loads_the_inventory_and_not_the_probes(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    one_copier().write(inventory)
    modules, output = loaded_after("validate", str(inventory))
    assert "valid: 1 client" in output
    assert "fleet.inventory" in modules
    assert sorted(m for m in NOT_FOR_VALIDATE if m in modules) == []


def test_the_command_table_names_every_command_where_it_is_defined() -> None:
    for module in {module for module, _ in COMMANDS.values()}:
        importlib.import_module(module)
    assert set(cli.commands) == set(COMMANDS)
    for name, command in cli.commands.items():
        module, summary = COMMANDS[name]
        assert command.callback is not None
        assert command.callback.__module__ == module, name
        # the summary is the first paragraph of the command's own help
        assert command.help is not None
        assert command.help.split("\n\n")[0].split() == summary.split(), name


def test_help_lists_the_commands_as_click_would_with_every_module_loaded() -> None:
    for module in {module for module, _ in COMMANDS.values()}:
        importlib.import_module(module)
    for width in (60, 80, 100, 200):
        context = click.Context(
            cli, info_name="fleet", max_content_width=width, terminal_width=width
        )
        lazy, eager = context.make_formatter(), context.make_formatter()
        cli.format_commands(context, lazy)
        click.Group.format_commands(cli, context, eager)
        assert lazy.getvalue() == eager.getvalue()
        assert "validate" in lazy.getvalue()


def test_every_classifier_rule_compiles() -> None:
    # The rules' phrases compile when a reply first needs them, no longer at import: a
    # phrase that does not compile must still be found by the tests, not by a sweep.
    from fleet.classify import RULES

    for rule in RULES:
        for phrase, pattern in ((rule._text_phrase, rule.text), (rule._unless_phrase, rule.unless)):
            assert phrase is None or phrase.compiled.pattern == pattern, rule.id
    assert sum(rule._text_phrase is not None for rule in RULES) > 40


def test_a_sweep_loads_no_http_server_or_template_modules(tmp_path: Path) -> None:
    # What a plain sweep never uses: the central's server, the push and Graph HTTP client
    # (httpx loads rich and pygments for its own command line), the HTML templates.
    inventory = tmp_path / "inventory.yaml"
    one_copier().write(inventory)
    modules, output = loaded_after("sweep", "-i", str(inventory), "--dry-run")
    assert "hq" in output
    assert "fleet.runner" in modules or "fleet.plan" in modules
    unused = ("httpx", "starlette", "uvicorn", "jinja2", "rich", "pygments", "fleet.serve")
    assert sorted(m for m in modules if m.split(".")[0] in unused or m in unused) == []
    # ... nor does the runner that a real sweep loads
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, fleet.runner, fleet.pipeline, fleet.cli.sweeping; "
            "print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = set(json.loads(done.stdout))
    assert "fleet.runner" in modules
    assert sorted(m for m in modules if m.split(".")[0] in unused or m in unused) == []
    # the SOCKS5 client loads only for a site that goes out through a proxy
    assert "python_socks" not in modules


def imported_by(stderr: str) -> set[str]:
    """The modules a child run with PYTHONPROFILEIMPORTTIME=1 imported (from its stderr)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


async def test_a_scan_from_a_warm_cache_loads_no_pydantic(
    m365: M365Lab, lab_dns: LabDns, tmp_path: Path
) -> None:
    # A technician's `fleet scan SITE` of an unchanged inventory reads it from the cache of
    # validated inventories, and its results are plain structs: no YAML reader, no pydantic
    # (its import and model building were a third of the scan's time, issue 20).
    copier = device(m365.mx.port, m365.ca_file, host="localhost", to="alice@contoso.test")
    built = InventoryBuilder(defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=20))
    path = built.site("hq", copier, client="Contoso").write(tmp_path / "inventory.yaml")
    env = fleet_env(FLEET_INVENTORY_CACHE=str(tmp_path / "cache"))
    argv = ("scan", "hq", "-i", str(path), "--no-store")
    cold = await run_fleet_async(*argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    warm = await run_fleet_async(*argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert "hq: mfp -> localhost" in warm.stdout, warm.stderr
    assert {"yaml", "fleet.inventory_models", "pydantic"} <= imported_by(cold.stderr)  # parsed
    modules = imported_by(warm.stderr)
    assert {"fleet.inventory", "fleet.inventory_cache", "msgspec"} <= modules
    parsing = {"yaml", "fleet.inventory_models", "fleet.yaml_source", "pydantic", "pydantic_core"}
    assert sorted(modules & parsing) == []
    # the table's tabulate without importlib.metadata (zipfile, email, a search of
    # site-packages for its own version): tabulate 0.10 has it, 0.9 does not (pyproject)
    assert "tabulate" in modules
    assert "importlib.metadata" not in modules


def test_the_models_are_built_on_first_use_not_at_import() -> None:
    # Building every model's validator at import cost `fleet scan` some 60 ms; a command
    # builds only the models it validates or dumps (defer_build). The results are msgspec
    # structs and so is the inventory (issue 20): they bring no pydantic with them. The
    # inventory's pydantic models are made from its classes only when a file is parsed
    # (fleet.inventory_models).
    code = (
        "import json, sys, fleet.results, fleet.readiness, fleet.inventory\n"
        "plain = 'pydantic' not in sys.modules\n"
        "made = 'fleet.inventory_models' in sys.modules\n"
        "from fleet.inventory_models import models\n"
        "ours = models()\n"
        "complete = [m.__name__ for m in ours.struct if m.__pydantic_complete__]\n"
        "head = ours.of(fleet.inventory.InventoryHead)\n"
        "head.model_validate({})\n"
        "print(json.dumps([plain, made, len(ours.struct), complete,\n"
        "                  head.__pydantic_complete__]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    plain, made, count, complete, head_built = json.loads(done.stdout)
    assert plain is True
    assert made is False  # importing the inventory makes no pydantic model
    assert count > 20
    assert complete == []
    assert head_built is True


def test_the_process_leaves_its_objects_to_the_os_and_still_exits_cleanly() -> None:
    # The collector's last walk over every object cost a one-site scan some 40 ms: the
    # process freezes them before it exits. Its exit handlers must still run and its output
    # arrive whole (piped stdout is block-buffered: `fleet schema` fills several blocks).
    code = textwrap.dedent(
        """
        import atexit, gc, sys
        from fleet.cli import main
        atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count() > 0}",
                                      file=sys.stderr))
        sys.argv = ["fleet", "schema"]
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0
    assert "SmtpSettings" in json.loads(done.stdout)["$defs"]
    assert done.stderr.strip() == "frozen at exit: True"


def test_a_caller_of_main_keeps_its_collector() -> None:
    # main(argv) is a call (tests, an embedding program): it must not freeze the caller's
    # objects, whose garbage the collector still has to find.
    import gc

    from fleet.cli import main

    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.get_freeze_count() == before
    assert gc.get_threshold() == thresholds


def test_start_up_collects_rarely_and_the_work_at_the_usual_pace() -> None:
    # The process's start-up builds what lives as long as the command: collected rarely;
    # when the work begins (the event loop, the server) it is frozen, and the collector
    # returns to its pace, for a sweep of 10,000 sites or a server that runs for months.
    import gc

    from fleet.cli import app

    usual = gc.get_threshold()
    frozen = gc.get_freeze_count()
    app._quiet_startup()
    try:
        assert gc.get_threshold() == (app.STARTUP_GC_OBJECTS, *usual[1:])
        app.end_of_startup()
        assert gc.get_threshold() == usual
        assert gc.get_freeze_count() > frozen
        app.end_of_startup()  # once only: a second loop in the same command changes nothing
        assert gc.get_threshold() == usual
    finally:
        gc.set_threshold(*usual)
        gc.unfreeze()


def test_a_command_that_runs_the_loop_ends_start_up_there() -> None:
    # In a fresh interpreter (the collector's default pace: 700 new objects).
    code = textwrap.dedent(
        """
        import gc, sys
        from fleet.cli import app
        app._quiet_startup()
        print(gc.get_threshold()[0], file=sys.stderr)
        import asyncio
        app.run_async(asyncio.sleep(0))
        print(gc.get_threshold()[0], gc.get_freeze_count() > 0, file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    from fleet.cli.app import STARTUP_GC_OBJECTS

    assert done.stderr.split() == [str(STARTUP_GC_OBJECTS), "700", "True"]


@pytest.mark.parametrize(("sites", "pace"), [(1, "startup"), (10, "startup"), (11, "usual")])
def test_a_sweep_of_a_few_sites_keeps_the_start_up_pace(sites: int, pace: str) -> None:
    # A technician's scan ends before its garbage matters; a sweep of many sites must not
    # hold its garbage until it ends.
    code = textwrap.dedent(
        f"""
        import gc, sys
        from fleet.cli import app
        app._quiet_startup()
        import asyncio
        app.run_async(asyncio.sleep(0), sites={sites})
        print(gc.get_threshold()[0], file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    from fleet.cli.app import STARTUP_GC_OBJECTS

    expected = STARTUP_GC_OBJECTS if pace == "startup" else 700
    assert done.stderr.split() == [str(expected)]


@pytest.mark.parametrize(("setting", "looked"), [(None, False), ("", True)])
def test_the_process_does_not_look_for_pydantic_plugins_unless_told_to(
    tmp_path: Path, setting: str | None, looked: bool
) -> None:
    # pydantic reads every installed distribution's entry points for its plugins when it
    # builds its first validator (about 5 ms of a one-site scan); fleet uses none. A
    # PYDANTIC_DISABLE_PLUGINS of the user's own (here empty: look for all) is kept.
    inventory = tmp_path / "inventory.yaml"
    one_copier().write(inventory)
    code = textwrap.dedent(
        f"""
        import atexit, importlib.metadata, sys
        asked = []
        real = importlib.metadata.entry_points
        importlib.metadata.entry_points = lambda **kw: (asked.append(kw), real(**kw))[1]
        atexit.register(lambda: print(f"plugins looked for: {{bool(asked)}}", file=sys.stderr))
        sys.argv = ["fleet", "validate", {str(inventory)!r}]
        from fleet.cli import main
        main()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    env["FLEET_INVENTORY_CACHE"] = "off"  # validators are built: the inventory is parsed
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "valid: 1 client" in done.stdout
    assert done.stderr.strip() == f"plugins looked for: {looked}"
