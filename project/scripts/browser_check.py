"""Open a displaCy page in headless Chromium, check the predicted spans show, screenshot it.

python scripts/browser_check.py PAGE.html SPANS.json SCREENSHOT.png
SPANS.json (written by visualize.py) lists the rendered spans as [text, label] pairs;
every label and the words of the first `max_spans` spans must be visible.
"""
import json
import shutil
from pathlib import Path

import typer
from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(page_path: Path, spans_path: Path, screenshot: Path, max_spans: int = 50) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise typer.BadParameter("Chromium is not installed (Debian: apt-get install chromium).")
    spans = json.loads(spans_path.read_text())
    if not spans:
        raise typer.BadParameter(f"{spans_path} lists no predicted spans to look for.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(page_path.resolve().as_uri())
        for label in sorted({label for _, label in spans}):
            if not page.get_by_text(label, exact=True).first.is_visible():
                raise AssertionError(f"label {label!r} is not visible on {page_path}")
        for text, label in spans[:max_spans]:
            for word in text.split():
                if not page.get_by_text(word).first.is_visible():
                    raise AssertionError(f"span {text!r} ({label}) is not visible on {page_path}")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    typer.echo(f"{len(spans)} predicted spans visible with their labels; screenshot: {screenshot}")


if __name__ == "__main__":
    typer.run(main)
