"""A real headless browser for the dashboard's tests: Debian's Chromium driven by Selenium through Debian's
chromedriver (`make browser` installs both), and checks of the screenshots it takes.

`browser_problem()` says why no browser can run here (the tests then skip with it).
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Where the tests leave their screenshots (CI keeps the directory of a failed run).
SCREENSHOTS = Path(os.environ.get("SHOAL_SCREENSHOTS", "/tmp/shoal-screenshots"))


def browser_problem() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is missing (make browser installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return ""


def chrome(width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
    """A headless Chromium that accepts the test server's certificate (of the test's own cluster CA)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.accept_insecure_certs = True
    service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


def png_summary(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixels) of a PNG: a blank page has very few."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels))


def save_screenshot(driver, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Take a screenshot, check it shows something (not one flat colour, no unfilled value in the page's
    text), and keep it under `SCREENSHOTS`."""
    text = driver.find_element("tag name", "body").text
    for junk in ("[object ", "undefined", "NaN"):
        assert junk not in text, f"the page {name} shows {junk!r}:\n{text[:2000]}"
    data = driver.get_screenshot_as_png()
    width, height, distinct = png_summary(data)
    assert width >= 800 and height >= 600, (width, height)
    assert distinct > 40, f"the screenshot {name} looks blank ({distinct} distinct byte values)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(data)
    return path
