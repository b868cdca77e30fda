"""A real SMTP server for latchkey's tests (aiosmtpd), printing what it receives.

    python3 tests/smtp/sink.py PORT

Prints {"ready": PORT} once it accepts connections, then one JSON line per
message: envelope sender and recipients, Subject, Message-ID, Content-Language
and the decoded text and HTML parts. Recipients whose local part starts with
"bounce" are refused with 550 (a permanent failure), those starting with
"defer" with 451 (a transient one). Stops when its standard input closes.
"""

import email
import email.policy
import json
import sys

try:
    from aiosmtpd.controller import Controller
except ImportError:
    print(json.dumps({"error": "aiosmtpd is not installed: pip install aiosmtpd"}), flush=True)
    sys.exit(3)


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 No such mailbox"
        if local.startswith("defer"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "subject": str(message["subject"] or ""),
                    "message_id": str(message["message-id"] or ""),
                    "header_from": str(message["from"] or ""),
                    "text": text.get_content() if text is not None else None,
                    "html": html.get_content() if html is not None else None,
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


def main():
    port = int(sys.argv[1])
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    print(json.dumps({"ready": port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
