"""The HTML report in a real browser (issue 21): reports rendered by the command line from
real sweeps against loopback servers, loaded in headless Chromium (Debian's `chromium`;
missing, the test skips, or fails under CI=true).

Checked in the rendered DOM: every site, verdict and flag; a server's `<script>` and
`<img onerror>` shown as text and never run; no network request; a screenshot that is not
blank; the print stylesheet (A4 landscape, colours kept); the filter, and the page without
JavaScript."""

from __future__ import annotations

import io
import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from PIL import Image

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Mailbox
from fleet.report.html import render_email_html, render_html

from .browser import chromium
from .conftest import (
    ROOT,
    M365Lab,
    fleet_env,
    publish_spf,
    require_binary,
    run_fleet,
    run_fleet_async,
)
from .inventory_builder import site
from .test_html_report import HOSTILE, hostile_sweep
from .test_matrix import PASSWORD, PASSWORD_ENV, ZONE, direct_send, header, submission

WriteInventory = Callable[..., Path]
MARKUP = HOSTILE  # what a hostile server (or agent file) puts where text belongs
A4_LANDSCAPE_PX = 1047  # 297 mm less 2 x 10 mm margins, at 96 px per inch


class MarkupHandler:
    """An MX whose RCPT TO refusal carries markup (its banner does too)."""

    replies: ClassVar[str] = f"550 5.7.1 refused {MARKUP}"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return self.replies


def client_site(ident: str, client: str, bind: str, *devices: dict[str, Any]) -> dict[str, Any]:
    return site(ident, *devices, client=client, egress={"bind": bind, "ip": bind})


@pytest.fixture
def chromium_binary() -> str:
    return require_binary("chromium")


async def _sweep_twice(
    lab_dns: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    write_inventory: WriteInventory,
    tmp_path: Path,
) -> tuple[dict[str, Any], Path]:
    """Two sweeps into one store (the second after a site got listed); the HTML of the
    second from `fleet sweep`, `fleet report` and `fleet report --client`, and its JSON."""
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(password=PASSWORD)
    hostile = LabSmtpServer(
        MarkupHandler(),
        hostname="evil.test",
        ident=f"ESMTP {MARKUP} ready",
        tls_context=certs.server_context("localhost", "127.0.0.1"),
    )
    await hostile.start()
    try:
        text = header(lab_dns).add(
            client_site("clean", "Fabrikam", "127.0.0.80", direct_send(m365.mx.port, m365.ca_file)),
            client_site("listed", "Contoso", "127.0.0.81", direct_send(m365.mx.port, m365.ca_file)),
            client_site(
                "office",
                "Contoso",
                "127.0.0.82",
                submission(m365.submission.port, m365.ca_file, "konica"),
            ),
            client_site(
                "hostile",
                f"Evil {MARKUP}",
                "127.0.0.83",
                direct_send(hostile.port, str(certs.ca_file), "mfp-evil"),
            ),
        )
        inventory = str(write_inventory(text))
        env = fleet_env(**{PASSWORD_ENV: PASSWORD})
        db = str(tmp_path / "fleet.db")

        async def fleet(*args: str) -> str:
            run = await run_fleet_async(*args, "--db", db, env=env, cwd=tmp_path)
            assert run.code in (0, 1, 2), run.stderr
            assert PASSWORD not in run.stdout + run.stderr
            return run.stdout

        await fleet("sweep", "-i", inventory, "-q", "--format", "html", "--output", "first.html")
        lab_dns.list_ip(ZONE, "127.0.0.81", "127.0.0.4", reason="Listed by lab XBL")
        await fleet("sweep", "-i", inventory, "-q", "--format", "html", "--output", "sweep.html")
        scan = await run_fleet_async(
            "scan", "hostile", "-i", inventory, "--no-store", "--format", "html", "-o", "scan.html",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert scan.code == 2, scan.stderr
    finally:
        await hostile.stop()
    await fleet("report", "--last", "--format", "html", "--output", "report.html")
    await fleet(
        "report", "--last", "--format", "html", "--client", "Contoso", "--output", "client.html"
    )
    document = json.loads(await fleet("report", "--last", "--format", "json"))
    # --client narrows the other formats too, and a client the sweep does not have is an error
    per_site = await fleet(
        "report", "--last", "--format", "csv", "--per-site", "--client", "Contoso"
    )
    assert [line.split(",")[2] for line in per_site.splitlines()[1:]] == ["listed", "office"]
    nobody = await run_fleet_async(
        "report", "--last", "--client", "Nobody", "--db", db, env=env, cwd=tmp_path
    )
    assert nobody.code == 3
    assert "has no site of client 'Nobody'" in nobody.stderr
    scanned = (tmp_path / "scan.html").read_text(encoding="utf-8")
    assert re.findall(r'<tr data-site="([^"]+)"', scanned) == ["hostile"]
    assert "refused &lt;script&gt;window.pwned=1&lt;/script&gt;" in scanned  # its transcript
    for name in ("sweep.html", "report.html", "client.html"):
        assert PASSWORD not in (tmp_path / name).read_text(encoding="utf-8")
    return document, tmp_path


@pytest.mark.slow
async def test_a_real_sweep_renders_in_chromium(
    lab_dns: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    write_inventory: WriteInventory,
    tmp_path: Path,
    chromium_binary: str,
) -> None:
    # Given two real sweeps of four sites (one newly listed, one whose server and client
    # name carry markup), and the HTML that `fleet sweep` and `fleet report` wrote
    document, folder = await _sweep_twice(lab_dns, m365, certs, write_inventory, tmp_path)
    sites = {s["site"]: s for s in document["sites"]}
    assert {k: s["verdict"] for k, s in sites.items()} == {
        "clean": "ok",
        "listed": "critical",
        "office": "warn",
        "hostile": "critical",
    }
    # the page of `fleet sweep` is the page of `fleet report` for the same sweep
    assert (folder / "sweep.html").read_text() == (folder / "report.html").read_text()

    async with chromium(folder / "profile", executable=chromium_binary) as browser:
        page = await browser.context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        url = (folder / "report.html").as_uri()
        await page.goto(url)
        await page.wait_for_load_state("load")

        # Then every site is a row with its verdict, and every flag is shown
        rows = await page.eval_on_selector_all(
            "#matrix tr[data-site]",
            "rows => rows.map(r => [r.dataset.site, r.dataset.verdict, r.innerText])",
        )
        assert [(site, verdict) for site, verdict, _ in rows] == [
            ("listed", "critical"),
            ("office", "warn"),
            ("hostile", "critical"),
            ("clean", "ok"),
        ]  # clients worst first (Contoso before the hostile one by name), sites worst first
        for site, verdict, text in rows:
            assert verdict in text
            for flag in sites[site]["flags"]:
                assert flag["code"] in text, (site, flag["code"])
        body = await page.inner_text("body")
        for site in sites.values():
            for flag in site["flags"]:
                if flag["severity"] != "info":
                    assert flag["remediation"] in body
        assert "DIRECT_SEND_DIRTY_IP" in body
        assert "BASIC_AUTH_RETIRING" in body
        # the header: counts, the Basic AUTH cut-off with the copier that still uses a password
        header_text = await page.inner_text("header")
        assert "2 critical" in header_text
        assert "1 warn" in header_text
        assert "31 December 2026" in header_text
        assert "1 copier at 1 site still logs in to Microsoft 365 with a password" in header_text
        assert "0 of them with a way forward this sweep proved" in header_text
        await page.locator("details.readiness summary").click()
        readiness = await page.inner_text("details.readiness")
        assert "office\tkonica\tscanner@contoso.test" in readiness
        assert "none proven" in readiness
        # the change since the first sweep, at the top, and a two-sweep trend per site
        changes = await page.inner_text("#changes")
        assert "listed" in changes
        assert "DIRECT_SEND_DIRTY_IP" in changes
        listed_trend = await page.eval_on_selector_all(
            'tr[data-site="listed"] svg rect', "marks => marks.map(m => m.dataset.verdict)"
        )
        assert listed_trend == ["ok", "critical"]

        # ...and the server's markup is text: shown, not run, not an element
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert await page.locator("img").count() == 0
        assert await page.locator("script").count() == 1
        for details in await page.locator("details").all():
            await details.evaluate("d => d.open = true")
        transcripts = await page.inner_text("#details")
        assert f"550 5.7.1 refused {MARKUP}" in transcripts
        assert f"ESMTP {MARKUP} ready" in transcripts
        assert f"Evil {MARKUP}" in await page.inner_text("#matrix")
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert errors == []

        # The page asked for nothing but itself
        assert browser.requests == [url]
        assert browser.blocked == []

        # A screenshot is not blank: many colours, and the critical cells' red among them
        shot = Image.open(io.BytesIO(await page.screenshot(full_page=True))).convert("RGB")
        colours = shot.getcolors(maxcolors=1 << 20)
        assert colours is not None
        assert len(colours) > 50
        assert (253, 226, 225) in {rgb for _, rgb in colours}
        assert shot.height > 600

        # The filter narrows the rows to one client, then to some verdicts
        assert await page.locator("#filters").is_visible()
        await page.select_option("#filters select", "Contoso")
        visible = await page.eval_on_selector_all(
            "#matrix tr[data-site]", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.site)"
        )
        assert visible == ["listed", "office"]
        await page.uncheck('#filters input[value="critical"]')
        visible = await page.eval_on_selector_all(
            "#matrix tr[data-site]", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.site)"
        )
        assert visible == ["office"]

        # Printed: A4 landscape, the matrix fits the page, colours kept, no filter
        await page.reload()
        await page.set_viewport_size({"width": A4_LANDSCAPE_PX, "height": 740})
        await page.emulate_media(media="print")
        printed = await page.evaluate(
            """() => {
                const cell = document.querySelector('#matrix td.v-critical');
                const style = getComputedStyle(cell);
                return {
                    filters: getComputedStyle(document.getElementById('filters')).display,
                    font: parseFloat(getComputedStyle(document.body).fontSize),
                    matrix: document.getElementById('matrix').getBoundingClientRect().width,
                    page: document.documentElement.scrollWidth,
                    background: style.backgroundColor,
                    adjust: style.printColorAdjust,
                };
            }"""
        )
        assert printed["filters"] == "none"
        assert printed["font"] == pytest.approx(10.67, abs=0.01)  # 8pt
        assert printed["matrix"] <= A4_LANDSCAPE_PX
        assert printed["page"] <= A4_LANDSCAPE_PX
        assert printed["background"] == "rgb(253, 226, 225)"
        assert printed["adjust"] == "exact"
        pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
        sizes = {
            (round(float(w)), round(float(h)))
            for w, h in re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
        }
        assert sizes == {(842, 595)}  # A4 landscape, in points
        await page.emulate_media(media="screen")
        assert await page.evaluate("getComputedStyle(document.body).fontSize") == "14px"

        # One client's page holds that client's sites only
        await page.goto((folder / "client.html").as_uri())
        client_rows = await page.eval_on_selector_all(
            "#matrix tr[data-site]", "rows => rows.map(r => r.dataset.site)"
        )
        assert client_rows == ["listed", "office"]
        assert browser.blocked == []


async def test_the_page_is_complete_without_javascript(
    tmp_path: Path, chromium_binary: str
) -> None:
    # Given the demo's report, opened with JavaScript off
    run = await run_fleet_async("demo", cwd=tmp_path, env=fleet_env())
    assert run.code == 0, run.stderr
    async with chromium(
        tmp_path / "profile", executable=chromium_binary, javascript=False
    ) as browser:
        page = await browser.context.new_page()
        await page.goto((tmp_path / "fleet-demo.html").as_uri())
        # Then every site and its findings are there, and the filter (which needs it) is not
        rows = await page.eval_on_selector_all(
            "#matrix tr[data-site]", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.site)"
        )
        assert sorted(rows) == ["contoso-branch", "contoso-hq", "fabrikam", "northwind", "tailspin"]
        assert not await page.locator("#filters").is_visible()
        details = await page.inner_text("#details")
        for code in (
            "DIRECT_SEND_DIRTY_IP",
            "DIRECT_SEND_DYNAMIC_IP",
            "AUTH_DISABLED",
            "SPF_NOT_AUTHORISED",
        ):
            assert code in details
        assert browser.blocked == []


async def test_only_the_pages_own_script_runs_and_the_e_mail_fetches_nothing(
    tmp_path: Path, chromium_binary: str
) -> None:
    # Given a page into which a script was slipped past the escaping (it is not: this proves
    # the second line of defence, the Content-Security-Policy), and the alert's HTML part
    page_text = render_html(hostile_sweep()).replace(
        "</body>", "<script>window.pwned = 'slipped in';</script></body>"
    )
    (tmp_path / "page.html").write_text(page_text, encoding="utf-8")
    (tmp_path / "mail.html").write_text(render_email_html(hostile_sweep()), encoding="utf-8")
    async with chromium(tmp_path / "profile", executable=chromium_binary) as browser:
        page = await browser.context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        await page.goto((tmp_path / "page.html").as_uri())
        # Then the page's own filter ran, the other script did not
        assert await page.locator("#filters").is_visible()
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert violations
        # A page of long unbroken names still fits A4 landscape when printed
        long_names = hostile_sweep()
        sites = [
            s.model_copy(update={"site": f"{s.site}-{'x' * 60}", "client": "C" * 70})
            for s in long_names.sites
        ]
        wide = tmp_path / "wide.html"
        wide.write_text(render_html(long_names.model_copy(update={"sites": sites})), "utf-8")
        await page.goto(wide.as_uri())
        await page.set_viewport_size({"width": A4_LANDSCAPE_PX, "height": 740})
        await page.emulate_media(media="print")
        assert await page.evaluate("document.documentElement.scrollWidth") <= A4_LANDSCAPE_PX
        await page.emulate_media(media="screen")

        # And the e-mail part shows the server's markup as text, with nothing to fetch
        await page.goto((tmp_path / "mail.html").as_uri())
        assert await page.locator("img").count() == 0
        assert MARKUP in await page.inner_text("body")
        assert await page.evaluate("typeof window.pwned") == "undefined"
    assert browser.blocked == []


# Chromium's IPv6 reachability probe: a UDP socket connected to this address to read the
# local address back; nothing is sent on it.
IPV6_PROBE = "2001:4860:4860::8888"
LOAD_PAGE = """\
import asyncio, sys
from pathlib import Path
from tests.browser import chromium

async def load(page_path, chromium_binary):
    async with chromium(Path(page_path).parent / "profile", executable=chromium_binary) as b:
        page = await b.context.new_page()
        await page.goto(Path(page_path).as_uri())
        await page.wait_for_timeout(2000)  # what the browser does on its own meanwhile

asyncio.run(load(sys.argv[1], sys.argv[2]))
"""
_DESTINATION = re.compile(
    r"(?P<call>connect|sendto|sendmsg)\(.*?sa_family=AF_INET6?"
    r'.*?(?:inet_pton\(AF_INET6, "(?P<v6>[^"]+)"|inet_addr\("(?P<v4>[^"]+)"\))'
)


@pytest.mark.slow
def test_chromium_itself_sends_nothing_beyond_loopback(
    tmp_path: Path, chromium_binary: str
) -> None:
    # Given the demo's page, opened in the tests' Chromium with every network call traced
    strace = require_binary("strace")
    run = run_fleet("demo", cwd=tmp_path, env=fleet_env())
    assert run.code == 0, run.stderr
    trace = tmp_path / "chromium.strace"
    done = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
         sys.executable, "-c", LOAD_PAGE, str(tmp_path / "fleet-demo.html"), chromium_binary],
        capture_output=True, text=True, cwd=ROOT, env=fleet_env(), timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Then no name was looked up and nothing was sent off loopback: the browser's own
    # lookups (accounts.google.com, update.googleapis.com) are refused inside it
    outside = []
    for line in trace.read_text(encoding="utf-8").splitlines():
        match = _DESTINATION.search(line)
        if match is None:
            continue
        address = match.group("v4") or match.group("v6")
        if not ipaddress.ip_address(address).is_loopback and address != IPV6_PROBE:
            outside.append(line)
    assert outside == []
