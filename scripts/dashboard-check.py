#!/usr/bin/env python3
"""The dashboard in a real headless browser (scripts/dashboard.sh runs it
under `presenced exec`).

Drives Debian's chromium over the DevTools protocol on a pipe
(--remote-debugging-pipe: NUL-separated JSON on file descriptors 3 and 4),
so it needs nothing but the Python standard library. Against the emulator
named by PRESENCED_URL with PRESENCED_ADMIN_TOKEN it checks that:
  - the roster shows a user written through the API before the page opened;
  - a second write shows up live, without a reload;
  - a status message containing <script> is shown as text and runs nothing;
  - the token given in the fragment leaves the address bar and is never
    sent in a URL; the page raises no exception and breaks no CSP rule;
  - the availability filter, the user's detail (sessions, timeline) and,
    with the admin token, the emulator's tools work;
and saves screenshots at 1280x800 and 390x844 under
target/dashboard-screenshots/. Then, as a browser app on another origin
(a blank page served from another port) calls Graph, it checks that the
CORS preflight lets a bearer token through (`Authorization` cannot be
covered by a wildcard) and that `request-id` is readable. Every wait has
a deadline and says what it waited for.
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

URL = os.environ["PRESENCED_URL"].rstrip("/")
TOKEN = os.environ["PRESENCED_ADMIN_TOKEN"]
TENANT = os.environ["PRESENCED_TENANT"]
SECRET_FILE = os.environ["PRESENCED_JWT_SECRET_FILE"]
PRESENCED = os.environ.get("PRESENCED_BIN", "presenced")
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
SHOTS = os.path.join(os.environ.get("SCREENSHOT_DIR", "target/dashboard-screenshots"))
DEADLINE_S = float(os.environ.get("DASHBOARD_DEADLINE_S", "30"))
XSS = 'heads down <script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def fail(message):
    print(f"dashboard-check: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def app_id(token):
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims.get("appid") or claims.get("azp")


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        fail(f"{method} {path} answered {e.code}: {e.read().decode(errors='replace')}")


def reader_token():
    """A token that may read the tenant but is no admin."""
    return subprocess.run(
        [PRESENCED, "token", "--jwt-secret-file", SECRET_FILE, "--tenant", TENANT,
         "--app", str(uuid.uuid4()), "--roles", "Presence.Read.All"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def set_presence(user, availability, activity):
    api("POST", f"/v1.0/users/{user}/presence/setPresence", {
        "sessionId": app_id(TOKEN),
        "availability": availability,
        "activity": activity,
        "expirationDuration": "PT1H",
    })


class Browser:
    """chromium with the DevTools protocol on a pipe."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="presenced-dashboard-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        args = [
            CHROMIUM,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # chromium's sandbox refuses root
        # The protocol's pipe ends must be the browser's descriptors 3 and 4
        # (copied out of the way first: a pipe end may itself be 3 or 4).
        # subprocess closes every other descriptor after this runs.
        def child():
            reads, writes = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(reads, 3)
            os.dup2(writes, 4)
        self.log = tempfile.NamedTemporaryFile(prefix="presenced-chromium-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            args, pass_fds=(3, 4), preexec_fn=child,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None
        self.closed = False

    def read_message(self, deadline):
        import select
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                self.closed = True
                fail(f"chromium closed the DevTools pipe; its output is in {self.log.name}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=True, timeout=DEADLINE_S):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.read_message(deadline)
            if reply is None:
                fail(f"no answer to {method} within {timeout} s")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    fail(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self):
        """Collects the events waiting on the pipe."""
        while True:
            message = self.read_message(time.monotonic() + 0.05)
            if message is None:
                return
            self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
        })
        if "exceptionDetails" in result:
            fail(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=DEADLINE_S):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                fail(f"waited {timeout} s for {what}; the page's errors: {self.errors()}; it shows: "
                     + str(self.evaluate("document.body.innerText.slice(0, 1500)")))
            self.pump()

    def errors(self):
        """What went wrong in the page so far: exceptions, console errors."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text"))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        return found

    def open_tab(self, url):
        """A new tab (its own session storage) showing `url`."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True,
        }, session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log", "Audits"):
            self.call(f"{domain}.enable")
        # No transitions: a screenshot shows where the page settles.
        self.call("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-reduced-motion", "value": "reduce"}],
        })
        self.call("Page.navigate", {"url": url})
        # `Page.navigate` answers once the navigation starts: until the new
        # document has loaded, the tab still shows about:blank, whose
        # elements a check would not find.
        self.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'",
                      f"{url} to load in the new tab")

    def viewport(self, width, height, mobile):
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile,
        })

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path = os.path.join(SHOTS, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print(f"dashboard-check: screenshot {path}")

    def close(self):
        if not self.closed:
            try:
                self.call("Browser.close", session=False, timeout=5)
            except SystemExit:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def cross_origin_check(browser, user):
    """A page on another origin (another port) reads and writes a presence
    with a bearer token, as a browser app using the Graph JS SDK does: a
    GET with `Authorization` and `client-request-id`, and a JSON POST, both
    preflighted. Each must succeed and expose `request-id`."""

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>another origin</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{page.server_address[1]}"
        seen = len(browser.events)
        browser.open_tab(f"{origin}/")
        browser.wait_for("document.readyState === 'complete' && document.title === 'another origin'",
                         f"the blank page on {origin}")
        call = """(async () => {
            const headers = {"Authorization": "Bearer " + %s, "client-request-id": "cors-check"};
            const read = await fetch(%s, {headers});
            const write = await fetch(%s, {method: "POST",
                headers: {...headers, "Content-Type": "application/json"},
                body: JSON.stringify({sessionId: %s, availability: "Busy", activity: "InACall"})});
            const after = await (await fetch(%s, {headers})).json();
            return {read: read.status, write: write.status, availability: after.availability,
                    requestId: read.headers.get("request-id"),
                    clientRequestId: read.headers.get("client-request-id")};
        })().catch(e => ({error: String(e)}))""" % (
            json.dumps(TOKEN), json.dumps(f"{URL}/v1.0/users/{user}/presence"),
            json.dumps(f"{URL}/v1.0/users/{user}/presence/setPresence"),
            json.dumps(app_id(TOKEN)), json.dumps(f"{URL}/v1.0/users/{user}/presence"))
        result = browser.evaluate(call)
        if not isinstance(result, dict) or "error" in result:
            fail(f"a page on {origin} could not call presenced at {URL}: {result}; "
                 f"the page's errors: {browser.errors()}")
        if (result["read"], result["write"], result["availability"]) != (200, 200, "Busy"):
            fail(f"a page on {origin} got {result} from presenced, not 200, 200 and Busy")
        if not result["requestId"] or result["clientRequestId"] != "cors-check":
            fail(f"a page on {origin} could not read request-id and client-request-id: {result}")
        # Chromium still lets `*` cover `Authorization` but reports it as a
        # deprecation (Firefox refuses it): any CORS or deprecation
        # issue the calls raised is a failure.
        browser.pump()
        issues = [e["params"]["issue"] for e in browser.events[seen:]
                  if e.get("method") == "Audits.issueAdded"
                  and e["params"]["issue"]["code"] in ("CorsIssue", "DeprecationIssue")]
        if issues:
            fail(f"the cross-origin calls raised browser issues: {json.dumps(issues)[:1500]}")
        print(f"dashboard-check: a page on {origin} called presenced with a bearer token")
    finally:
        page.shutdown()
        page.server_close()


def main():
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    # Written through the API before the page opens: the roster must list them.
    set_presence(alice, "Available", "Available")
    set_presence(bob, "Away", "Away")
    api("POST", f"/v1.0/users/{bob}/presence/setStatusMessage", {
        "statusMessage": {"message": {"content": XSS, "contentType": "text"}},
    })

    browser = Browser()
    try:
        browser.open_tab(f"{URL}/#token={TOKEN}")
        browser.viewport(1280, 800, False)

        row = lambda user: f'document.querySelector(\'tr[data-id="{user}"]\')'
        browser.wait_for(f"{row(alice)} !== null", f"the roster to list {alice}")
        browser.wait_for(f"{row(bob)} !== null", f"the roster to list {bob}")
        browser.wait_for("document.getElementById('live').dataset.state === 'live'",
                         "the live indicator to say Live")
        if browser.evaluate("location.hash") != "":
            fail("the token is still in the address bar")
        if browser.evaluate("sessionStorage.getItem('presenced.token')") != TOKEN:
            fail("the token is not kept in session storage")
        if browser.evaluate("localStorage.length") != 0:
            fail("the page wrote to local storage")
        badge = lambda user: f"{row(user)}.querySelector('.badge').dataset.availability"
        if browser.evaluate(badge(alice)) != "Available":
            fail(f"{alice}'s badge says {browser.evaluate(badge(alice))}, not Available")

        # The status message is text: shown as written, no element made of it, nothing ran.
        shown = browser.evaluate(f"{row(bob)}.querySelector('.message').textContent")
        if shown != XSS:
            fail(f"the status message is shown as {shown!r}, not as its text")
        if browser.evaluate("document.querySelectorAll('#rows script, #rows img').length") != 0:
            fail("the status message became elements")
        if browser.evaluate("typeof window.__xss") != "undefined":
            fail("script from the status message ran")

        # A second write shows up live: same document (the marker survives), new badge.
        browser.evaluate("window.__notReloaded = true")
        set_presence(alice, "Busy", "InACall")
        browser.wait_for(f"{badge(alice)} === 'Busy'", f"{alice}'s badge to turn Busy without a reload")
        if browser.evaluate("window.__notReloaded") is not True:
            fail("the page reloaded")
        activity = browser.evaluate(f"{row(alice)}.children[2].textContent")
        if activity != "In a call":
            fail(f"{alice}'s activity shows {activity!r}")

        # A user first written after the page opened gets a row of its own.
        carol = str(uuid.uuid4())
        set_presence(carol, "DoNotDisturb", "Presenting")
        browser.wait_for(f"{row(carol)} !== null", f"a new row for {carol}")

        # The filter by availability.
        browser.evaluate("(() => { const f = document.getElementById('filter'); f.value = 'Busy';"
                         " f.dispatchEvent(new Event('change')); })()")
        ids = browser.evaluate("[...document.querySelectorAll('#rows tr')].map(r => r.dataset.id)")
        if ids != [alice]:
            fail(f"filtering on Busy shows {ids}")
        browser.evaluate("(() => { const f = document.getElementById('filter'); f.value = '';"
                         " f.dispatchEvent(new Event('change')); })()")
        browser.evaluate("(() => { const s = document.getElementById('search'); s.value = 'heads down';"
                         " s.dispatchEvent(new Event('input')); })()")
        ids = browser.evaluate("[...document.querySelectorAll('#rows tr')].map(r => r.dataset.id)")
        if ids != [bob]:
            fail(f"searching 'heads down' shows {ids}")
        browser.evaluate("(() => { const s = document.getElementById('search'); s.value = '';"
                         " s.dispatchEvent(new Event('input')); })()")

        # Emulator tools are shown to an admin on an emulator.
        if browser.evaluate("document.getElementById('emulator').hidden") is not False:
            fail("the emulator's clock controls are hidden for an admin token on an emulator")
        browser.screenshot("desktop-roster.png")

        # The detail: sessions behind the aggregate and the timeline (both
        # of alice's changes: replayed from the log or seen live).
        browser.evaluate(f"{row(alice)}.click()")
        browser.wait_for("document.querySelectorAll('#detail-sessions tr').length === 1",
                         f"{alice}'s one session in the detail")
        browser.wait_for("document.querySelectorAll('#timeline li').length >= 2",
                         f"{alice}'s two changes in the timeline")
        # Simulate a Teams client session through the detail's form.
        browser.evaluate("document.getElementById('sim-pair').value = 'Busy/InAMeeting'")
        browser.evaluate("document.querySelector('#simulate button[type=submit]').click()")
        browser.wait_for("document.querySelectorAll('#detail-sessions tr').length === 2",
                         "the simulated client session in the detail")
        browser.wait_for(f"{row(alice)}.children[2].textContent === 'In a meeting'",
                         "the roster to show the client session's activity")
        browser.screenshot("desktop-detail.png")

        browser.viewport(390, 844, True)
        browser.wait_for("innerWidth === 390", "the phone-sized viewport")
        browser.screenshot("phone-detail.png")
        browser.evaluate("document.getElementById('detail-close').click()")
        if browser.evaluate("document.querySelectorAll('#rows tr.selected').length") != 0:
            fail("a row is still marked selected after the detail closed")
        browser.screenshot("phone-roster.png")

        # End the simulated session from the detail, then move the clock a
        # day: alice's app session expires and the roster shows it live.
        browser.viewport(1280, 800, False)
        browser.evaluate(f"{row(alice)}.click()")
        browser.wait_for("document.querySelector('#detail-sessions button[data-end=\"desktop\"]') !== null",
                         "the End button of the simulated session")
        browser.evaluate("document.querySelector('#detail-sessions button[data-end=\"desktop\"]').click()")
        browser.wait_for("document.querySelectorAll('#detail-sessions tr').length === 1",
                         "the ended client session to leave the detail")
        before = browser.evaluate("document.getElementById('emulator-now').title")
        browser.evaluate("document.querySelector('[data-advance=\"P1D\"]').click()")
        browser.wait_for(f"document.getElementById('emulator-now').title !== {json.dumps(before)}",
                         "the emulator clock to show the new time")
        browser.wait_for(f"{badge(alice)} === 'Offline'", f"{alice} to turn Offline live once the clock moved")
        browser.wait_for("document.getElementById('detail-no-sessions').hidden === false",
                         f"{alice}'s detail to show no live sessions")
        browser.evaluate("document.getElementById('detail-close').click()")

        # No request carried the token in its URL; no exception, console
        # error or CSP violation.
        browser.pump()
        for event in browser.events:
            params = event.get("params", {})
            if event.get("method") == "Network.requestWillBeSent" and TOKEN in params["request"]["url"]:
                fail(f"a request carried the token in its URL: {params['request']['url'][:80]}…")
        if browser.errors():
            fail(f"the page reported errors: {browser.errors()}")

        api("PUT", f"/_presenced/users/{alice}/clientSessions/phone",
            {"availability": "Available", "activity": "Available"})
        # More users than one page of the listing ($top=200): the page
        # follows @odata.nextLink.
        known = browser.evaluate("document.querySelectorAll('#rows tr').length")
        for _ in range(250):
            set_presence(str(uuid.uuid4()), "Away", "Away")

        # A new tab without a token asks for one; a reader's token pasted
        # there shows the roster without the emulator's tools.
        browser.open_tab(f"{URL}/")
        browser.viewport(1280, 800, False)
        browser.wait_for("document.getElementById('connect').hidden === false", "the token form")
        browser.screenshot("desktop-connect.png")
        browser.evaluate(f"document.getElementById('token-input').value = {json.dumps(reader_token())}")
        browser.evaluate("document.querySelector('#token-form button[type=submit]').click()")
        browser.wait_for(f"{row(carol)} !== null", "the roster for the reader's token")
        browser.wait_for(f"document.getElementById('count').textContent === '{known + 250} users'",
                         f"all {known + 250} users, over two pages of the listing")
        if browser.evaluate("document.getElementById('emulator').hidden") is not True:
            fail("the emulator's clock controls are shown to a token without Presenced.Admin")
        browser.evaluate(f"{row(alice)}.click()")
        browser.wait_for("document.querySelectorAll('#detail-sessions tr').length === 1",
                         f"{alice}'s simulated client session in the reader's detail")
        if browser.evaluate("document.getElementById('simulate').hidden") is not True:
            fail("the simulated-session form is shown to a token without Presenced.Admin")
        if browser.evaluate("document.querySelectorAll('#detail-sessions button').length") != 0:
            fail("End buttons are shown to a token without Presenced.Admin")
        cross_origin_check(browser, alice)
        print("dashboard-check: all checks passed")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
