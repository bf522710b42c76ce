"""The web page in headless Chromium: upload an image, ask, watch the steps, read the answer and the crop box.

Drives Debian's /usr/bin/chromium through Playwright; never a downloaded browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


def test_page_uploads_asks_and_shows_the_answer_and_the_crop_box(serve, example_image: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serve(delay_s=0.05) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"{base}/")
            page.set_input_files("#file", str(example_image))
            page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
            page.fill("#question", "How tall is this lighthouse?")
            page.click("#ask")
            page.wait_for_function("document.getElementById('answer').textContent.length > 0", timeout=15_000)
            page.wait_for_function("!document.getElementById('ask').disabled", timeout=15_000)

            assert page.text_content("#answer") == "38 metres"
            kinds = page.eval_on_selector_all("#steps li", "items => items.map(li => li.className)")
            assert kinds == ["reasoning", "search", "result", "reasoning", "search", "result", "reasoning", "answer"]
            assert "the lighthouse tower" in page.text_content("#steps li.search")
            assert page.text_content("#status").startswith("Done: answer")

            box = page.locator(".crop-box")
            assert box.count() == 1
            assert box.get_attribute("data-box") == "120,30,200,220"
            # Drawn where the crop is: the image is shown at its natural 320x240 size here.
            image = page.locator("#preview").bounding_box()
            drawn = box.bounding_box()
            assert image is not None and drawn is not None
            assert drawn["x"] - image["x"] == pytest.approx(120, abs=2)
            assert drawn["y"] - image["y"] == pytest.approx(30, abs=2)
            assert drawn["width"] == pytest.approx(80, abs=2)
            assert drawn["height"] == pytest.approx(190, abs=2)
        finally:
            browser.close()


def test_page_shows_the_server_error(serve, example_image: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serve(max_image_pixels=1000) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            page.set_input_files("#file", str(example_image))
            page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
            page.fill("#question", "How tall?")
            page.click("#ask")
            page.wait_for_function("document.getElementById('status').className === 'bad'", timeout=15_000)
            assert "HTTP 400" in page.text_content("#status")
            assert "pixels" in page.text_content("#status")
            assert page.text_content("#answer") == ""
        finally:
            browser.close()
