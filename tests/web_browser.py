"""A real headless Chromium (Debian's ``chromium`` + its ``chromedriver``) driven by Selenium.

Used by ``tests/test_web_*.py``. Nothing is downloaded: the browser and the driver come
from apt (``scripts/bootstrap.sh --test``), Selenium from PyPI. Selenium is blocking, so
the async tests call it through ``asyncio.to_thread`` (``Page``) and the in-process
servers keep serving on the test's loop meanwhile.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--ignore-certificate-errors",  # the agent's self-signed loopback certificate (as 6.0 ships its own)
]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("chromium and chromium-driver are required: apt-get install chromium chromium-driver (scripts/bootstrap.sh --test does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nhigw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    downloads = Path(profile) / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # where a test finds what the page exported
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Async wrappers over one Selenium driver."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.d = driver
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.run(self.d.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.d.execute_script, script, *args)

    async def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        el = await self.run(self.d.find_element, By.CSS_SELECTOR, css)
        await self.run(self.d.execute_script, "arguments[0].scrollIntoView({block: 'center'});", el)  # clear of the sticky top bar
        await self.run(el.click)

    async def type(self, css: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        el = await self.run(self.d.find_element, By.CSS_SELECTOR, css)
        await self.run(el.clear)
        await self.run(el.send_keys, text)

    async def text(self, css: str) -> str:
        return str(await self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css))

    async def wait(self, predicate_js: str, timeout_s: float, *args: Any) -> float:
        """Wait until the JS expression (``return ...``) is truthy; return the seconds it took. Fails after ``timeout_s``."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await self.run(WebDriverWait(self.d, timeout_s, poll_frequency=0.05).until, lambda d: d.execute_script(predicate_js, *args))
        except TimeoutException:
            raise AssertionError(f"not true within {timeout_s} s: {predicate_js} {args}") from None
        return loop.time() - t0

    async def wait_css(self, css: str, timeout_s: float = 5.0) -> float:
        return await self.wait("return document.querySelector(arguments[0]) !== null;", timeout_s, css)

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.run(self.d.save_screenshot, str(path))
        return path
