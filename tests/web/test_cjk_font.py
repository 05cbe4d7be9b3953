"""Chinese renders in the test browser: the set-up installs a CJK font beside Debian's chromium.

Without one, every Chinese character is drawn as the same empty box (the font's missing glyph), so
screenshots and browser tests cannot see what a regulator reads. Drawn on a canvas, two different
characters then give identical pixels; with a CJK font they differ.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium

pytestmark = needs_chromium

GLYPHS_JS = """
(chars) => chars.map((ch) => {
  const canvas = document.createElement("canvas");
  canvas.width = 48; canvas.height = 48;
  const ctx = canvas.getContext("2d");
  ctx.font = "40px sans-serif";
  ctx.fillText(ch, 2, 40);
  const data = ctx.getImageData(0, 0, 48, 48).data;
  let inked = 0, hash = 0;
  for (let i = 3; i < data.length; i += 4) {
    if (data[i] > 0) inked += 1;
    hash = (hash * 31 + data[i]) >>> 0;
  }
  return [inked, hash];
})
"""


def test_fontconfig_knows_a_chinese_font() -> None:
    fc_list = shutil.which("fc-list")
    assert fc_list, "fontconfig missing: make services installs chromium, which brings it"
    families = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=True
    ).stdout
    assert families.strip(), "no CJK font: make services installs fonts-noto-cjk"


@pytest.mark.slow
def test_chinese_characters_draw_distinct_glyphs_in_chromium() -> None:
    chars = ["危", "险", "品", "车"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_content("<meta charset='utf-8'><body></body>")
            glyphs: list[list[int]] = page.evaluate(GLYPHS_JS, chars)
        finally:
            browser.close()
    assert all(inked > 50 for inked, _ in glyphs), glyphs
    hashes = {digest for _, digest in glyphs}
    assert len(hashes) == len(chars), f"Chinese characters render as one box: {glyphs}"
