"""Headless Chromium for the browser tests: Debian's `chromium` and `chromium-driver` driven by Selenium.

When they are missing and the tests run as root with apt-get (CI on this machine does), they are
installed once; elsewhere the browser tests skip and say why. Screenshots go to
$TALKPAY_SCREENSHOT_DIR (default .run/screenshots/), from where the README's are copied into docs/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
DEFAULT_SCREENSHOTS = Path(__file__).resolve().parents[2] / ".run" / "screenshots"
SCREENSHOTS = Path(os.environ.get("TALKPAY_SCREENSHOT_DIR", DEFAULT_SCREENSHOTS))


def _binaries() -> tuple[str | None, str | None]:
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    return browser, shutil.which(DRIVER)


def _install() -> str | None:
    """Install Chromium and its driver with apt; the reason when that cannot be done here."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root, so apt-get cannot install them"
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None


def chromium_or_skip() -> tuple[str, str]:
    browser, driver = _binaries()
    if browser and driver:
        return browser, driver
    reason = _install()
    browser, driver = _binaries()
    if not (browser and driver):
        reason = reason or "still missing after apt-get install"
        pytest.skip(f"browser tests need Debian's chromium and chromium-driver: {reason}")
    return browser, driver


def start_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
    flags = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,800")
    for flag in flags:
        options.add_argument(flag)
    # Service with an explicit path: Selenium Manager would try to download a driver otherwise.
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
