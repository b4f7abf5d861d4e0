"""Real Chromium (Debian's package) driven by Playwright, against `chalice local` on the real local stack."""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium tries to reach Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI and was not found at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); CI installs it and runs these tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
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
