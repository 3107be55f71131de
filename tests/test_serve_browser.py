"""The web page in a real browser: headless Chromium runs its script against the live service; what it shows must be
/predict's answer."""
import re
import shutil
import subprocess
import tempfile

import httpx
import pytest

from wine_nb.serve.inputs import TYPICAL_WINES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")


def chromium(*args) -> subprocess.CompletedProcess:
    "Headless Chromium with no network besides the page's own, given 10 s of virtual time for the page's script."
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
        return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("example", ["red", "white"])
def test_page_shows_the_prediction_of_the_service(server, example):
    dom = chromium("--dump-dom", f"{server}/?example={example}").stdout
    assert 'data-state="predicted"' in dom, dom[-2000:]
    shown = dict(re.findall(r'id="(quality|expected|p-\d)">([^<]*)<', dom))
    answer = httpx.post(f"{server}/predict", json=TYPICAL_WINES[example]).json()
    assert int(shown["quality"]) == answer["quality"]
    assert float(shown["expected"]) == pytest.approx(answer["expected_quality"], abs=5e-4)
    shown_probabilities = {g: float(shown[f"p-{g}"]) for g in answer["probabilities"]}
    assert shown_probabilities == pytest.approx(answer["probabilities"], abs=5e-4)
