"""Real Chromium (Debian's package) driven by Playwright, against `chalice local` on the real local stack."""

import os
import re
import shutil

import pytest

from tests.helpers import require_system_tool

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium tries to reach Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def playwright():
    require_system_tool(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def bfcache_page(playwright, live_server):
    """A page in a Chromium whose back/forward cache is on, as in real browsers (Playwright turns it off)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         ignore_default_args=["--disable-back-forward-cache"])
    context = browser.new_context(base_url=live_server, viewport={"width": 1024, "height": 800})
    yield context.new_page()
    context.close()
    browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append((message.type, message.text)))
    yield page
    context.close()


@pytest.fixture
def screenshots(output_dir):
    directory = os.path.join(output_dir, "screenshots")
    os.makedirs(directory, exist_ok=True)

    def take(page, name, **options):
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True, **options)

    return take


AXE = os.path.join(os.path.dirname(__file__), "..", "js", "node_modules", "axe-core", "axe.min.js")


@pytest.fixture(scope="session")
def axe_source():
    """axe-core from the npm registry (tests/js/package-lock.json; `make test` installs it)."""
    assert os.path.exists(AXE), f"axe-core is missing at {AXE}: run `make test` (it runs npm ci in tests/js)"
    with open(AXE) as handle:
        return handle.read()


@pytest.fixture
def axe(axe_source):
    """Run axe-core on the page as it is now; return its violations (rule id, impact, first targets)."""

    def check(page):
        if not page.evaluate("() => Boolean(window.axe)"):
            # Evaluated through the DevTools protocol, so the page's own CSP does not apply to it.
            page.evaluate(axe_source + "\n;undefined")
        results = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
        return [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in results["violations"]]

    return check


def set_timing(page, **timing):
    """Shorter waits for the client (the defaults are the product's); must run before page.goto."""
    import json

    page.add_init_script(f"globalThis.threeDUltraTiming = {json.dumps(timing)};")


# Records every value the progress bar takes, in sessionStorage, which survives the navigation that follows.
RECORD_PROGRESS = """
new MutationObserver(() => {
  const bar = document.getElementById('progress');
  const status = document.getElementById('status');
  if (!bar || !status || bar.dataset.watched) return;
  bar.dataset.watched = '1';
  const record = (key, value) => {
    const seen = JSON.parse(sessionStorage.getItem(key) || '[]');
    seen.push(value);
    sessionStorage.setItem(key, JSON.stringify(seen));
  };
  // The upload's bar and the processing page's are both #progress: each page records under its own key.
  const key = document.getElementById('processing-page') ? 'processing-progress-seen' : 'progress-seen';
  new MutationObserver(() => record(key, Number(bar.value)))
    .observe(bar, { attributes: true, attributeFilter: ['value'] });
  // What the status live region says, which is what a screen reader announces.
  new MutationObserver(() => record('status-seen', status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}).observe(document, { childList: true, subtree: true });
"""


# Where a finished upload lands; the group is the job id.
PROCESSING_URL = re.compile(r".*/processing/([a-z0-9]{24})$")


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    """A small real PNG: the client and the server both check its first bytes."""
    from tests.images import png_bytes

    path = tmp_path_factory.mktemp("photos") / "portrait.png"
    path.write_bytes(png_bytes(64, 64))
    return path


def submit_upload(page, photo, email="maya@example.com"):
    """Open the upload page, fill it in and press Upload."""
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()
