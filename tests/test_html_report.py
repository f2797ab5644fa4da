"""The HTML report (issue 21): one self-contained page from a sweep, every server-supplied
string shown as text, the matrix worst first with words beside every colour, the findings
and transcripts of sites that are not ok, changes and trends; the alert e-mail's HTML part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser

from fleet.report.html import (
    EMAIL_SITES,
    TREND_LENGTH,
    content_security_policy,
    render_email_html,
    render_html,
)
from fleet.results import Change, Severity, SweepResult

from .test_reports import T0, fixed_sweep

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@dataclass(frozen=True)
class Point:
    sweep_id: str
    started_at: str
    verdict: str
    complete: bool = True


class Elements(HTMLParser):
    """Every element of a page with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


def hostile_sweep() -> SweepResult:
    """The fixed sweep with markup where a server (or an agent's file) puts text."""
    result = fixed_sweep()
    site = result.sites[0]
    device = site.devices[0]
    assert device.reply is not None
    reply = device.reply.model_copy(update={"text": f"5.7.1 {HOSTILE}"})
    had = site.conversation_of(device)
    stage = had.transcript[-1].model_copy(update={"reply": reply})
    had = had.model_copy(update={"transcript": [*had.transcript[:-1], stage]})
    device = device.model_copy(update={"reply": reply})
    flag = site.flags[0].model_copy(update={"evidence": f"rejected: {HOSTILE}"})
    site = site.model_copy(
        update={
            "client": f"Contoso {HOSTILE}",
            "devices": [device, *site.devices[1:]],
            "conversations": {**site.conversations, device.conversation: had},
            "flags": [flag, *site.flags[1:]],
        }
    )
    return result.model_copy(update={"sites": [site, *result.sites[1:]]})


def test_the_page_names_every_site_verdict_and_flag_worst_first() -> None:
    result = fixed_sweep()
    page = render_html(result)
    text = " ".join(parse(page).text)
    for site in result.sites:
        assert site.site in text
        for flag in site.flags:
            assert flag.code in text
    rows = re.findall(r'<tr data-site="([^"]+)" data-client="[^"]*" data-verdict="([^"]+)"', page)
    assert rows == [
        ("contoso-hq", "critical"),
        ("northwind", "critical"),
        ("woodgrove", "unknown"),
        ("tailspin", "warn"),
        ("fabrikam", "ok"),
    ]
    # every coloured cell carries its words
    cells = re.findall(r'<td class="c v-\w+">(.*?)</td>', page, re.S)
    assert len(cells) == 5 * 5  # verdict, egress, MX/SPF and two device modes, per site
    for inner in cells:
        assert re.sub(r"<[^>]+>", " ", inner).split(), inner
    # what to do, for each site that is not ok, with the transcript collapsed
    assert 'id="site-contoso-hq"' in page
    assert 'id="site-fabrikam"' not in page
    assert "<details" in page
    assert "<details open" not in page
    assert "550 5.7.606 Access denied" in text


def test_server_markup_is_text_and_the_page_fetches_nothing() -> None:
    page = render_html(hostile_sweep())
    elements = parse(page)
    # the only script is the page's own filter, and nothing has an event handler
    scripts = [attrs for tag, attrs in elements.tags if tag == "script"]
    assert len(scripts) == 1
    assert not [tag for tag, _ in elements.tags if tag == "img"]
    for tag, attrs in elements.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (tag, attrs)
    assert "window.pwned" in "".join(elements.text)  # shown as characters
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "script-src 'sha256-" in content_security_policy()
    assert "default-src 'none'" in content_security_policy()


def test_changes_come_first_and_each_site_has_its_trend() -> None:
    result = fixed_sweep()
    change = Change(
        site="contoso-hq",
        client="Contoso Dental",
        kind="new_flag",
        severity=Severity.critical,
        summary="new DIRECT_SEND_DIRTY_IP (critical)",
    )
    result = result.model_copy(update={"changes": [change], "previous_sweep": "earlier-1"})
    history = {
        "contoso-hq": [
            Point(f"s{n}", (T0 - timedelta(days=n)).isoformat(), "ok" if n > 3 else "critical")
            for n in range(1, 40)
        ]
        + [Point("later", (T0 + timedelta(days=1)).isoformat(), "ok")],
    }
    page = render_html(result, history=history)
    assert page.index('id="changes"') < page.index('id="matrix"')
    assert "Changes since sweep earlier-1" in page
    assert "new DIRECT_SEND_DIRTY_IP (critical)" in page
    strip = page.split('data-site="contoso-hq"', 1)[1].split("</svg>", 1)[0]
    marks = re.findall(r'<rect [^>]*data-verdict="(\w+)"', strip)
    assert len(marks) == TREND_LENGTH
    assert marks[-4:] == ["critical"] * 4  # the last three before this sweep, and this one
    assert "later" not in strip  # a sweep after this one is not part of its trend
    assert f"last {TREND_LENGTH} sweeps: 4 critical, 26 ok" in strip


def test_one_client_page() -> None:
    page = render_html(fixed_sweep(), client="Tailspin Toys")
    rows = re.findall(r'<tr data-site="([^"]+)"', page)
    assert rows == ["tailspin"]


def test_the_alert_html_is_the_e_mail_safe_subset() -> None:
    page = render_email_html(hostile_sweep())
    elements = parse(page)
    tags = {tag for tag, _ in elements.tags}
    assert not tags & {"script", "style", "svg", "details", "img", "link", "form"}
    assert "&lt;script&gt;" in page
    text = " ".join(elements.text)
    assert "DIRECT_SEND_DIRTY_IP" in text
    assert "Basic AUTH cut-off, 31 December 2026" in text
    assert "fabrikam" not in text  # ok sites need no attention


def test_the_alert_carries_the_e_mail_html() -> None:
    from fleet.notify import compose

    alert = compose(hostile_sweep())
    assert alert.html == render_email_html(hostile_sweep())
    assert "&lt;img src=x onerror=" in alert.html


def test_an_incomplete_sweep_says_so_and_what_was_not_swept() -> None:
    result = fixed_sweep()
    info = result.sweep.model_copy(
        update={
            "complete": False,
            "interrupted": "interrupted by SIGTERM",
            "sites_missing": ["litware"],
            "finished_at": None,
        }
    )
    page = render_html(result.model_copy(update={"sweep": info}))
    notice = page.split('id="incomplete"', 1)[1].split("</div>", 1)[0]
    assert "This sweep is incomplete" in notice
    assert "interrupted by SIGTERM" in notice
    assert "1 planned site not swept: litware" in notice
    assert "took <b>did not finish</b>" in page


def test_the_alert_html_lists_the_worst_sites_then_a_count() -> None:
    result = fixed_sweep()
    sites = [
        s.model_copy(update={"site": f"{s.site}-{n}"})
        for n in range(EMAIL_SITES)
        for s in result.sites
    ]
    page = render_email_html(result.model_copy(update={"sites": sites}))
    listed = re.findall(r"<b>([a-z-]+-\d+)</b>", page)
    assert len(listed) == EMAIL_SITES
    assert all(name.startswith(("contoso-hq", "northwind")) for name in listed)  # critical
    not_ok = sum(s.verdict.value != "ok" for s in sites)
    assert f"{not_ok - EMAIL_SITES} more sites need attention" in page


def test_a_sweep_without_sites_claims_nothing_is_fine() -> None:
    result = fixed_sweep()
    info = result.sweep.model_copy(update={"complete": False, "sites_missing": ["a", "b"]})
    page = render_html(result.model_copy(update={"sites": [], "sweep": info}))
    assert "2 planned sites not swept: a, b" in page
    assert "No site in this report." in page
    assert "every site is ok" not in page
    mail = render_email_html(result.model_copy(update={"sites": [], "sweep": info}))
    assert "2 planned sites not swept" in mail
    assert "Every site is ok" not in mail


def test_the_header_counts_the_days_to_the_basic_auth_cut_off_from_the_sweep() -> None:
    # Given the fixed sweep, run on 26 November 2026, and the same sweep run after the cut-off
    result = fixed_sweep()
    late = result.sweep.model_copy(
        update={"started_at": T0 + timedelta(days=40), "finished_at": T0 + timedelta(days=40)}
    )
    # Then the page and the e-mail count the days from the sweep's own day
    for render in (render_html, render_email_html):
        before = " ".join(" ".join(parse(render(result)).text).split())
        assert "Microsoft Basic AUTH cut-off, 31 December 2026: 35 days left" in before
        after = " ".join(
            " ".join(parse(render(result.model_copy(update={"sweep": late}))).text).split()
        )
        assert "31 December 2026: passed 5 days before this sweep" in after
