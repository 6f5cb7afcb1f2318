"""Where Chromium cannot be had, the browser tests skip and say why instead of failing."""

import pytest

from web.tests import browser


def test_missing_chromium_without_root_skips_with_the_reason(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)  # a machine without Chromium
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)  # and not root

    with pytest.raises(pytest.skip.Exception) as skipped:
        browser.chromium_or_skip()

    assert "chromium and chromium-driver" in str(skipped.value)
    assert "not root" in str(skipped.value)


def test_missing_apt_get_as_root_skips_with_the_reason(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)

    with pytest.raises(pytest.skip.Exception) as skipped:
        browser.chromium_or_skip()

    assert "no apt-get" in str(skipped.value)
