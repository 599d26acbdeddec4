"""Open an HTML readout in headless Chromium with the network cut off, and report what it drew."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# Chart containers: Altair's output div (before vega-embed runs) or vega-embed's container.
# A chart is drawn when it holds Vega marks in an SVG, or a canvas with any painted pixel.
CHART_STATUS_JS = """
const charts = Array.from(document.querySelectorAll('.vega-embed, [id^="altair-viz-"]'));
function isDrawn(el) {
  if (el.querySelector('svg [class*="mark-"]')) return true;
  return Array.from(el.querySelectorAll('canvas')).some(canvas => {
    if (!canvas.width || !canvas.height) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
    return false;
  });
}
return {
  ready: document.readyState === 'complete',
  charts: charts.length,
  drawn: charts.filter(isDrawn).length,
};
"""


@dataclass
class BrowserReport:
    """What a page did in the browser: charts found and drawn, errors, requests, visible text."""

    charts: int
    drawn: int
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    title: str = ""
    text: str = ""


def chromium_available() -> bool:
    """True when Debian's chromium and chromedriver are installed."""
    return all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))


def render_in_browser(html_path: Path, *, wait_s: float = 10) -> BrowserReport:
    """Open `html_path` offline in headless Chromium and wait up to `wait_s` for every chart."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="workbench-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--window-size=1280,1024",
            f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.get(Path(html_path).resolve().as_uri())
            deadline = time.monotonic() + wait_s
            status = driver.execute_script(CHART_STATUS_JS)
            while time.monotonic() < deadline and not (
                status["ready"] and status["drawn"] == status["charts"]
            ):
                time.sleep(0.1)
                status = driver.execute_script(CHART_STATUS_JS)
            resources = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name);"
            )
            return BrowserReport(
                charts=status["charts"],
                drawn=status["drawn"],
                console_errors=[
                    entry["message"]
                    for entry in driver.get_log("browser")
                    if entry["level"] == "SEVERE"
                ],
                external_requests=[url for url in resources if not url.startswith(LOCAL_SCHEMES)],
                title=driver.title,
                text=driver.execute_script("return document.body.innerText;"),
            )
        finally:
            driver.quit()
