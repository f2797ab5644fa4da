"""Headless Chromium (Debian's `chromium`, driven by playwright; playwright never downloads a
browser of its own here) for the HTML report tests, and the README's screenshot.

`python -m tests.browser screenshot` runs the demo and writes docs/html-report.png.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from playwright.async_api import BrowserContext, Route, async_playwright

CHROMIUM = "/usr/bin/chromium"
# No sandbox (tests run as root), and none of the browser's own traffic: no component
# updates, no sync, no background requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    # Even so, Chromium looks up accounts.google.com and update.googleapis.com through the
    # system's resolver: every host name fails at once, unresolved (pages are file:// URLs).
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Browser:
    context: BrowserContext
    requests: list[str] = field(default_factory=list)  # every URL any page asked for
    blocked: list[str] = field(default_factory=list)  # and those that were not local files


@asynccontextmanager
async def chromium(
    profile: Path, *, executable: str = CHROMIUM, javascript: bool = True
) -> AsyncIterator[Browser]:
    """A fresh headless Chromium (its own profile folder) that records every request and
    lets none leave the machine: anything but a file:// URL is aborted."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            java_script_enabled=javascript,
            viewport={"width": 1280, "height": 900},
        )
        browser = Browser(context)
        context.on("request", lambda request: browser.requests.append(request.url))

        async def refuse(route: Route) -> None:
            browser.blocked.append(route.request.url)
            await route.abort()

        await context.route(re.compile(r"^(?!file:)"), refuse)
        try:
            yield browser
        finally:
            await context.close()


def screenshot(out: Path) -> None:
    """Run the demo in a temporary folder and photograph the top of its HTML report."""
    with tempfile.TemporaryDirectory(prefix="fleet-shot-") as temp:
        folder = Path(temp)
        subprocess.run(
            [sys.executable, "-m", "fleet", "demo"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        asyncio.run(_photograph(folder, out))


async def _photograph(folder: Path, out: Path) -> None:
    async with chromium(folder / "profile") as browser:
        page = await browser.context.new_page()
        await page.set_viewport_size({"width": 1100, "height": 800})
        await page.goto((folder / "fleet-demo.html").as_uri())
        # the header, the legend and the matrix; the findings below are text
        bottom = await page.evaluate(
            "document.getElementById('matrix').getBoundingClientRect().bottom"
        )
        png = await page.screenshot(
            clip={"x": 0, "y": 0, "width": 1100, "height": bottom + 12}, full_page=True
        )
    assert not browser.blocked, browser.blocked
    # a palette of 128 colours keeps the file small and the text sharp
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    image.save(out, optimize=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["screenshot"]:
        sys.exit("usage: python -m tests.browser screenshot")
    target = ROOT / "docs" / "html-report.png"
    target.parent.mkdir(exist_ok=True)
    screenshot(target)
    print(f"wrote {target}")
