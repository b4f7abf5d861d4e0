"""The whole flow in real Chromium, in the production topology `make prod-local` starts: front end, API under
its stage prefix and storage on three origins."""

import json
import re

import pytest

from devstack.frontend import FrontendServer
from tests.browser.conftest import RECORD_PROGRESS, set_timing
from tests.images import png_bytes

JOB_ID = r"([a-z0-9]{24})"


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "noisy.png"
    # Random pixels do not compress (about 0.5 MB), so the upload has progress to show.
    path.write_bytes(png_bytes(400, 400, noise=True))
    return path


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append((message.type, message.text)))
    yield page
    context.close()


class RequestLog:
    """Every request the tab sent and got an answer to, CORS preflights included, as Chromium's network stack
    reports it over CDP (Playwright's own request events leave preflights out).

    Chromium announces a request (requestWillBeSent) before its preflight decides whether it may go at all, so
    only requests that received a response are counted; those refused by CORS are kept apart, with the reason.
    """

    def __init__(self, page):
        self.announced = {}
        self.entries = []
        self.cors_failures = []
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.requestWillBeSent", self._announced)
        self.cdp.on("Network.responseReceived", self._answered)
        self.cdp.on("Network.loadingFailed", self._failed)
        self.cdp.send("Network.enable")

    def _announced(self, event):
        self.announced[event["requestId"]] = (event.get("type"), event["request"]["method"], event["request"]["url"])

    def _answered(self, event):
        kind, method, url = self.announced.get(event["requestId"], (event.get("type"), "?", event["response"]["url"]))
        if url.startswith("data:"):
            return  # the photo's preview thumbnail: drawn in the page, never sent over the network
        self.entries.append((kind, method, url))

    def _failed(self, event):
        if event.get("corsErrorStatus"):
            self.cors_failures.append((*self.announced[event["requestId"]][1:], event["corsErrorStatus"]["corsError"]))

    def mark(self):
        return len(self.entries)

    def until_navigation(self, start, processing_url):
        """The requests sent from `start` up to (not including) the navigation to the processing page."""
        sent = []
        for kind, method, url in self.entries[start:]:
            if kind == "Document" and re.fullmatch(processing_url, url):
                return sent
            sent.append((kind, method, url))
        raise AssertionError(f"no navigation to {processing_url} among {self.entries[start:]}")


def upload_through(page, photo, email="maya@example.com"):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()


def local_storage(page):
    return page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


def summary(requests):
    """`METHOD url-without-query`, sorted: Chromium reports a preflight just after the request it precedes.
    The client never sends OPTIONS itself, so every OPTIONS is a CORS preflight."""
    return sorted(f"{method} {url.split('?')[0]}" for _, method, url in requests)


def run_flow(page, photo, home, processing_pattern, requests):
    page.goto(home)
    start = requests.mark()
    upload_through(page, photo)
    page.wait_for_url(re.compile(processing_pattern), timeout=60_000)
    job_id = re.fullmatch(processing_pattern, page.url).group(1)
    # prod-local's worker takes the job at once: any status on its way shows the page followed it.
    page.locator("#job-status").filter(
        has_text=re.compile("Waiting to be processed|Being turned into 3D|Ready")).wait_for(timeout=30_000)
    return job_id, requests.until_navigation(start, processing_pattern)


def test_from_the_front_end_origin_the_flow_crosses_origins_with_the_fewest_requests(tab, prod_local, photo):
    frontend, api, storage = prod_local["frontend"], prod_local["api"], prod_local["storage"]
    processing = re.escape(frontend) + "/processing/" + JOB_ID
    tab.add_init_script(RECORD_PROGRESS)
    requests = RequestLog(tab)

    first_job, first = run_flow(tab, photo, frontend, processing, requests)
    stored = local_storage(tab)
    progress = json.loads(tab.evaluate("() => sessionStorage.getItem('progress-seen') || '[]'"))
    second_job, second = run_flow(tab, photo, frontend, processing, requests)

    print(f"\nrequests from submit to navigation, front end on another origin: first upload {len(first)}, "
          f"second upload in the same tab {len(second)}")
    print("first: " + "; ".join(f"{method} {url.split('?')[0]}" for _, method, url in first))
    print("second: " + "; ".join(f"{method} {url.split('?')[0]}" for _, method, url in second))
    assert stored[f"3d-ultra-session-{first_job}"] and stored["3d-ultra-current-job"] == first_job
    assert local_storage(tab)["3d-ultra-current-job"] == second_job
    assert progress and progress[-1] == 100 and progress == sorted(progress)
    assert tab.locator("#job-id").text_content() == second_job
    create, confirm = f"{api}/api/upload", f"{api}/api/upload/{first_job}/confirm"
    put = f"{storage}/uploads/uploads/{first_job}/original.png"
    assert summary(first) == sorted([f"OPTIONS {create}", f"POST {create}", f"OPTIONS {put}", f"PUT {put}",
                                     f"OPTIONS {confirm}", f"POST {confirm}"])
    # Access-Control-Max-Age keeps the create preflight; the new job's storage and confirm URLs are new URLs.
    confirm, put = f"{api}/api/upload/{second_job}/confirm", f"{storage}/uploads/uploads/{second_job}/original.png"
    assert summary(second) == sorted([f"POST {create}", f"OPTIONS {put}", f"PUT {put}", f"OPTIONS {confirm}",
                                      f"POST {confirm}"])
    assert [m for m in tab.console_messages if m[0] == "error"] == []


def test_the_api_s_own_page_under_the_stage_prefix_runs_the_whole_flow(tab, prod_local, photo):
    api, storage = prod_local["api"], prod_local["storage"]
    processing = re.escape(api) + "/processing/" + JOB_ID
    requests = RequestLog(tab)

    job_id, sent = run_flow(tab, photo, api + "/", processing, requests)

    print(f"\nrequests from submit to navigation, the API's own page: {len(sent)}")
    put = f"{storage}/uploads/uploads/{job_id}/original.png"
    assert summary(sent) == sorted([f"POST {api}/api/upload", f"OPTIONS {put}", f"PUT {put}",
                                    f"POST {api}/api/upload/{job_id}/confirm"])
    stored = local_storage(tab)
    assert stored[f"3d-ultra-session-{job_id}"] and stored["3d-ultra-current-job"] == job_id
    assert tab.locator("#job-id").text_content() == job_id
    assert [m for m in tab.console_messages if m[0] == "error"] == []


@pytest.fixture
def stranger(prod_local):
    """The same front end, served from an origin that is not in ALLOWED_ORIGINS."""
    server = FrontendServer(api_base=prod_local["api"], storage_url=prod_local["storage"],
                            max_upload_bytes=20 * 1024 * 1024).start()
    yield server.url
    server.stop()


def test_a_page_on_an_origin_that_is_not_allowed_cannot_call_the_api(tab, prod_local, stranger, photo):
    requests = RequestLog(tab)
    # A refused preflight looks like a network failure to the page, which retries it: keep those waits short.
    set_timing(tab, retryDelaysMs=[100, 100])
    tab.goto(stranger)

    upload_through(tab, photo)
    tab.get_by_text("We couldn't reach the server. Check your connection and try again.").wait_for(timeout=30_000)
    health = tab.evaluate("url => fetch(url).then(() => 'answered', (e) => e.name)", prod_local["api"] + "/api/health")

    assert health == "TypeError"
    assert re.fullmatch(re.escape(stranger) + "/?", tab.url)
    answered = summary(requests.entries)
    # The browser asks, is refused, and never sends the create itself.
    assert f"OPTIONS {prod_local['api']}/api/upload" in answered
    assert f"POST {prod_local['api']}/api/upload" not in answered
    assert answered.count(f"OPTIONS {prod_local['api']}/api/upload") == 3  # the first try and its two retries
    assert ("POST", f"{prod_local['api']}/api/upload", "PreflightMissingAllowOriginHeader") in requests.cors_failures
    assert any("CORS" in text for _, text in tab.console_messages)
