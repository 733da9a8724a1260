"""The browser tests run only when asked (make test-browser), never inside plain make test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _collect(*args: str) -> str:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.stdout


def test_plain_pytest_deselects_the_browser_tests_and_browser_keeps_only_them():
    plain = _collect("tests/test_browser.py", "tests/test_lab_launcher.py")
    assert "test_browser.py::" not in plain and "test_lab_launcher.py::" in plain
    assert "deselected" in plain
    browser = _collect("--browser", "tests/test_browser.py", "tests/test_lab_launcher.py")
    assert "test_browser.py::test_every_explorer_responds_in_the_browser[00_welcome]" in browser
    assert "test_lab_launcher.py::" not in browser
