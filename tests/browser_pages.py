"""Helpers for tests that open leaderboard pages in a real browser: headless Chromium (Debian's ``chromium``)
driven by Playwright, with every console error, uncaught exception, failed request and dialog recorded.

Without Playwright or chromium, :func:`chromium_browser` skips the test with the reason (it fails under
``DICETALK_BENCH_REQUIRE_OPTIONAL=1``, as in CI). Playwright never downloads a browser here: it launches the system
one.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from optional_resources import REPO, require_executable, require_module

WRITE_SCREENSHOTS_ENV = "DICETALK_BENCH_WRITE_SCREENSHOTS"


def chromium_browser() -> Iterator[object]:
    """Yield a launched headless Chromium (for a module-scoped fixture: ``yield from chromium_browser()``)."""
    require_module("playwright", "pip install playwright, part of the dev extra; no browser download is needed")
    chromium = require_executable("chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield browser
        browser.close()


@dataclasses.dataclass
class Opened:
    """A page opened in a fresh browser context, with what went wrong while it was open."""

    page: object
    errors: list[str]  # console errors, uncaught exceptions, failed requests
    dialogs: list[str]  # alert/confirm/prompt messages (dismissed)


def open_page(browser, url: str, width: int = 1280, height: int = 900) -> Opened:
    """Open ``url`` in a fresh context of ``browser`` and record what goes wrong on it (close it with
    ``opened.page.context.close()``)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    opened = Opened(page=page, errors=[], dialogs=[])
    page.on("console", lambda msg: opened.errors.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "assert") else None)
    page.on("pageerror", lambda exc: opened.errors.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda req: opened.errors.append(f"request failed: {req.url} {req.failure}"))

    def on_dialog(dialog) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url, wait_until="load")
    return opened


REFERENCES_JS = """() => {
    const out = [];
    for (const el of document.querySelectorAll('[src], [poster], [href], [srcset]')) {
        for (const attr of ['src', 'poster', 'href']) {
            const v = el.getAttribute(attr);
            if (v !== null) out.push([el.tagName.toLowerCase(), attr, v, new URL(v, document.baseURI).href]);
        }
        const set = el.getAttribute('srcset');
        if (set !== null) for (const part of set.split(',')) {
            const v = part.trim().split(/\\s+/)[0];
            if (v) out.push([el.tagName.toLowerCase(), 'srcset', v, new URL(v, document.baseURI).href]);
        }
    }
    return out;
}"""


def unresolved_references(page, folder: Path) -> list[str]:
    """Every src/poster/srcset/href of the page (in-page #anchors aside) that is not a file inside ``folder``."""
    root = folder.resolve()
    bad = []
    for tag, attr, value, url in page.evaluate(REFERENCES_JS):
        parsed = urlparse(url)
        if attr == "href" and value.startswith("#"):
            continue
        if parsed.scheme != "file":
            bad.append(f"<{tag} {attr}={value!r}>: not a local file ({parsed.scheme}:)")
            continue
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(root):
            bad.append(f"<{tag} {attr}={value!r}>: outside the site folder ({path})")
        elif not path.is_file():
            bad.append(f"<{tag} {attr}={value!r}>: no such file ({path})")
    return bad


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, read from its header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def compact_png(path: Path) -> None:
    """Rewrite a screenshot as a 256-colour palette PNG (flat page colours and anti-aliased text survive; about a
    third of the RGB file's size), so the committed images stay small."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def screenshot_folder(tmp_path: Path) -> Path:
    """``docs/images`` when ``DICETALK_BENCH_WRITE_SCREENSHOTS=1``, else the test's temporary folder."""
    return REPO / "docs" / "images" if os.environ.get(WRITE_SCREENSHOTS_ENV) == "1" else tmp_path
