"""The hosted pages in headless Chromium, end to end, against a live latchkey.

    python3 hosted_pages.py BASE_URL SMTP_PORT CLIENT_ID RP_PORT SHOTS_DIR

BASE_URL is latchkey (configured to send mail to SMTP_PORT, where this
script runs a real SMTP server, aiosmtpd); CLIENT_ID a public, third-party
client whose redirect URI is http://127.0.0.1:RP_PORT/callback. Playwright
drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) at 360 px:

1. sign up, and verify the address from the link in the email received;
2. enrol TOTP on the account page (the QR code's key, codes from pyotp);
3. add a passkey through Chromium's virtual authenticator (the DevTools
   WebAuthn domain), sign out, and sign in with the passkey;
4. a relying party built on authlib runs the authorization code flow with
   PKCE: sign in with the password and the TOTP code, consent, and the RP
   verifies the ID token itself from discovery and the JWKS alone
   (signature, iss, aud, exp, nonce, at_hash);
5. reset the password from the emailed link, and sign in with the new one;
6. change the email address and confirm it from the emailed link.

Every page is scanned with axe-core (WCAG 2.2 A/AA rules); a serious or
critical violation fails the run. Each page is saved as a screenshot in
SHOTS_DIR, in light mode, and the sign-in page in dark mode too. Prints
"OK" and exits 0 only when everything above happened.
"""

import json
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pyotp
from aiosmtpd.controller import Controller
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from playwright.sync_api import sync_playwright

BASE, SMTP_PORT, CLIENT_ID, RP_PORT, SHOTS = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules/axe-core/axe.min.js")
REDIRECT = f"http://127.0.0.1:{RP_PORT}/callback"
EMAIL = "carol@example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase 77"


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


# --- a real SMTP server --------------------------------------------------------

MAIL = []


class Inbox:
    async def handle_DATA(self, server, session, envelope):
        MAIL.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def code_in_mail(since):
    """The six-digit code in a message received after `since` messages."""
    deadline = time.time() + 20
    while time.time() < deadline:
        for message in MAIL[since:]:
            found = re.search(r"\b(\d{6})\b", message.split("\n\n", 1)[-1])
            if found:
                return found.group(1)
        time.sleep(0.2)
    fail("no email with a sign-in code arrived")


def link_in_mail(path, since):
    """The first link to `path` in a message received after `since` messages."""
    deadline = time.time() + 20
    while time.time() < deadline:
        for message in MAIL[since:]:
            text = message.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
            found = re.search(re.escape(BASE) + "/" + path + r"\?token=[A-Za-z0-9_\-]+", text)
            if found:
                return found.group(0)
        time.sleep(0.2)
    fail(f"no email with a /{path} link arrived ({len(MAIL)} messages)")


# --- the relying party: authlib, verifying the ID token itself ------------------

DISCOVERY = json.load(urllib.request.urlopen(BASE + "/.well-known/openid-configuration"))
RESULT = {}


class RelyingParty:
    def __init__(self):
        self.session = OAuth2Session(CLIENT_ID, redirect_uri=REDIRECT, scope="openid profile email",
                                     code_challenge_method="S256")
        self.verifier = os.urandom(32).hex()
        self.nonce = os.urandom(16).hex()
        self.url, self.state = self.session.create_authorization_url(
            DISCOVERY["authorization_endpoint"], code_verifier=self.verifier, nonce=self.nonce)

    def finish(self, callback_url):
        token = self.session.fetch_token(DISCOVERY["token_endpoint"], authorization_response=callback_url,
                                         code_verifier=self.verifier, state=self.state)
        jwks = JsonWebKey.import_key_set(json.load(urllib.request.urlopen(DISCOVERY["jwks_uri"])))
        claims = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                            claims_options={"iss": {"essential": True, "value": DISCOVERY["issuer"]}},
                            claims_params={"nonce": self.nonce, "client_id": CLIENT_ID,
                                           "access_token": token["access_token"]})
        claims.validate(leeway=30)
        if "at_hash" not in claims:
            raise ValueError("no at_hash in the ID token")
        return claims


RP = {}


class Callback(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            claims = RP["current"].finish(f"http://127.0.0.1:{RP_PORT}{self.path}")
            RESULT["claims"] = dict(claims)
            body = f"<!doctype html><title>RP</title><p id=who>Signed in as {claims['preferred_username']}</p>"
            self.send_response(200)
        except Exception as error:  # the RP's verdict goes to the test
            RESULT["error"] = repr(error)
            body = f"<!doctype html><title>RP</title><p id=who>error {error!r}</p>"
            self.send_response(400)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


# --- the browser ---------------------------------------------------------------

AXE_SOURCE = open(AXE, encoding="utf-8").read()
SCANNED = []


def check(page, name, dark=False):
    """axe-core on the page (no serious or critical violation), 360 px without
    horizontal scrolling, and a screenshot."""
    page.evaluate(AXE_SOURCE)
    results = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})""")
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    if bad:
        fail(f"axe on {name}: " + "; ".join(f"{v['id']} ({v['impact']}): {v['help']} at "
                                             f"{[n['target'] for n in v['nodes']][:3]}" for v in bad))
    width = page.evaluate("() => document.documentElement.scrollWidth")
    if width > 360:
        fail(f"{name} scrolls sideways at 360 px ({width} px wide)")
    csp = page.evaluate("() => document.querySelector('script[nonce]') !== null")
    if not csp:
        fail(f"{name} has no nonced script")
    page.screenshot(path=os.path.join(SHOTS, f"{name}{'-dark' if dark else ''}.png"), full_page=True)
    SCANNED.append(name)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=SMTP_PORT)
    smtp.start()
    rp_server = HTTPServer(("127.0.0.1", RP_PORT), Callback)
    threading.Thread(target=rp_server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            context = browser.new_context(viewport={"width": 360, "height": 800})
            page = context.new_page()
            page.set_default_timeout(15000)
            # Anything the pages' own Content-Security-Policy blocks is a defect.
            blocked = []
            page.on("console", lambda message: blocked.append(message.text)
                    if message.type == "error" and "Content Security Policy" in message.text else None)
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
            try:
                flow(page, lambda: cdp.send("WebAuthn.removeVirtualAuthenticator", added))
            except Exception:
                print(f"at {page.url}: {page.inner_text('body')[:600]!r} rp={RESULT!r}", flush=True)
                raise
            browser.close()
            if blocked:
                fail("the Content-Security-Policy blocked: " + " | ".join(blocked[:3]))
    finally:
        smtp.stop()
        rp_server.shutdown()
    print("scanned: " + ", ".join(SCANNED))
    print("OK", flush=True)


USED_CODES = set()


def fresh_code(secret):
    """A TOTP code not used before: latchkey refuses a code twice (replay), so
    wait for the next 30-second step when this one's code was spent."""
    totp = pyotp.TOTP(secret)
    while totp.now() in USED_CODES:
        time.sleep(0.5)
    code = totp.now()
    USED_CODES.add(code)
    return code


def sign_out(page):
    page.goto(BASE + "/account")
    page.get_by_role("button", name="Sign out", exact=True).last.click()
    page.wait_for_url(re.compile(r"/sign-in"))


def flow(page, remove_authenticator):
    # The sign-in page, light and dark, before any passkey exists.
    page.goto(BASE + "/sign-in")
    check(page, "sign-in")
    page.emulate_media(color_scheme="dark")
    check(page, "sign-in", dark=True)
    page.emulate_media(color_scheme="light")

    # 1. Sign up, then verify the address from the email.
    page.goto(BASE + "/sign-up")
    check(page, "sign-up")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    mail_before = len(MAIL)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(BASE + "/account")
    verify = link_in_mail("verify-email", mail_before)
    page.goto(verify)
    check(page, "verify-email")
    page.get_by_role("button", name="Verify email").click()
    page.get_by_text("Your email address is verified.").wait_for()
    page.goto(BASE + "/account")
    if "not verified" in page.inner_text("main"):
        fail("the address is still unverified after the link")

    # A code by email signs in too.
    sign_out(page)
    page.get_by_text("Sign in with a code by email").click()
    page.get_by_label("Email", exact=True).fill(EMAIL)
    mail_before = len(MAIL)
    page.get_by_role("button", name="Email me a code").click()
    page.get_by_label("Code", exact=True).wait_for()
    check(page, "email-code")
    page.get_by_label("Code", exact=True).fill(code_in_mail(mail_before))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(BASE + "/account")

    # 2. TOTP, with the key shown beside the QR code.
    page.get_by_label("Current password").nth(2).fill(PASSWORD)  # profile, password, then TOTP forms
    page.get_by_role("button", name="Set up authenticator app").click()
    page.locator(".qr svg").wait_for()
    check(page, "totp-enrolment")
    secret = page.locator("code.secret").inner_text().strip()
    page.get_by_label("Code", exact=True).fill(fresh_code(secret))
    page.get_by_role("button", name="Turn on").click()
    page.get_by_role("heading", name="Recovery codes").wait_for()
    if page.locator(".codes li").count() < 8:
        fail("no recovery codes after enrolling TOTP")

    # 3. A passkey through the virtual authenticator, then sign in with it.
    page.goto(BASE + "/account")
    page.get_by_role("button", name="Add a passkey").click()
    page.locator(".rows li", has_text="Passkey").first.wait_for()
    check(page, "account")
    sign_out(page)
    try:
        page.get_by_role("button", name="Sign in with a passkey").click(timeout=5000)
    except Exception:
        pass  # conditional UI (the username field's autofill) may have signed in first
    page.wait_for_url(BASE + "/account")
    if "carol" not in page.inner_text("main"):
        fail("the passkey did not sign carol in")
    print("signed in with the passkey", flush=True)
    # From here on, passwords and TOTP: without the authenticator, the
    # sign-in page's conditional UI cannot sign carol in by itself.
    remove_authenticator()
    sign_out(page)

    # 4. The relying party's code flow, with the second factor and consent.
    RP["current"] = RelyingParty()
    page.goto(RP["current"].url)
    page.wait_for_url(re.compile(r"/sign-in\?"))
    page.get_by_label("Username or email").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/sign-in/second-factor"))
    check(page, "second-factor")
    page.get_by_label("Authentication or recovery code").fill(fresh_code(secret))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Allow access").wait_for()
    check(page, "consent")
    with page.expect_navigation(url=re.compile(r"127\.0\.0\.1:%d/callback" % RP_PORT), timeout=30000):
        page.get_by_role("button", name="Allow", exact=True).click()
    if "error" in RESULT:
        fail("the relying party refused: " + RESULT["error"])
    claims = RESULT.get("claims") or fail("the relying party got no ID token")
    if claims.get("acr") != "aal2" or "otp" not in claims.get("amr", []):
        fail(f"the ID token does not show the second factor: {claims}")
    print(f"relying party verified an ID token for {claims['preferred_username']} amr={claims['amr']}")

    # Signing out from a link asks first (no id_token_hint here).
    page.goto(BASE + "/end-session")
    check(page, "sign-out")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Signed out").wait_for()
    check(page, "signed-out")

    # 5. Reset the password from the emailed link.
    page.goto(BASE + "/authorize?client_id=nope&redirect_uri=https%3A%2F%2Fevil.example%2F")
    check(page, "authorize-error")
    page.goto(BASE + "/forgot-password")
    check(page, "forgot-password")
    mail_before = len(MAIL)
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Send reset link").click()
    page.get_by_role("status").wait_for()
    reset = link_in_mail("reset-password", mail_before)
    page.goto(reset)
    check(page, "reset-password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("Your password is changed").wait_for()
    page.goto(BASE + "/sign-in")
    page.get_by_label("Username or email").fill(EMAIL)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/sign-in/second-factor"))
    page.get_by_label("Authentication or recovery code").fill(fresh_code(secret))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(BASE + "/account")

    # 6. Change the address, confirmed from the email sent to the new one.
    mail_before = len(MAIL)
    page.get_by_text("Change email").click()
    page.get_by_label("New email").fill("carol.new@example.com")
    page.get_by_label("Current password").first.fill(NEW_PASSWORD)
    page.get_by_role("button", name="Send confirmation link").click()
    page.get_by_role("status").wait_for()
    confirm = link_in_mail("confirm-email-change", mail_before)
    page.goto(confirm)
    check(page, "confirm-email-change")
    page.get_by_role("button", name="Confirm new email").click()
    page.get_by_text("Your email address is changed.").wait_for()
    page.goto(BASE + "/account")
    if "carol.new@example.com" not in page.inner_text("main"):
        fail("the new address is not on the account page")


if __name__ == "__main__":
    main()
