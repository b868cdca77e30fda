"""A software authenticator for the tests, outside the project: PyPI's
soft-webauthn (a P-256 key, 'none' attestation, a signature counter),
speaking the server's WebAuthn JSON.

    python3 authenticator.py create STATE ORIGIN < creation-options.json
    python3 authenticator.py get STATE ORIGIN < request-options.json

Each prints the PublicKeyCredential as JSON (binary fields base64url) and
keeps the authenticator (its key and counter) in the file STATE, so a copy
of that file is a cloned authenticator.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from soft_webauthn import SoftWebauthnDevice


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def save(device, path):
    state = {
        "credential_id": b64encode(device.credential_id),
        "private_key": device.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "rp_id": device.rp_id,
        "user_handle": b64encode(device.user_handle),
        "sign_count": device.sign_count,
    }
    with open(path, "w") as file:
        json.dump(state, file)


def load(path):
    with open(path) as file:
        state = json.load(file)
    device = SoftWebauthnDevice()
    device.credential_id = b64decode(state["credential_id"])
    device.private_key = serialization.load_pem_private_key(
        state["private_key"].encode(), password=None
    )
    device.rp_id = state["rp_id"]
    device.user_handle = b64decode(state["user_handle"])
    device.sign_count = state["sign_count"]
    return device


def as_json(credential):
    response = {
        key: b64encode(value) if value is not None else None
        for key, value in credential["response"].items()
    }
    return {
        "id": b64encode(credential["rawId"]),
        "rawId": b64encode(credential["rawId"]),
        "type": credential["type"],
        "response": response,
        "clientExtensionResults": {},
    }


def main():
    command, path, origin = sys.argv[1:4]
    options = json.load(sys.stdin)
    public_key = options["publicKey"]
    public_key["challenge"] = b64decode(public_key["challenge"])
    if command == "create":
        public_key["user"]["id"] = b64decode(public_key["user"]["id"])
        device = SoftWebauthnDevice()
        credential = device.create(options, origin)
    elif command == "get":
        device = load(path)
        credential = device.get(options, origin)
    else:
        raise SystemExit(f"unknown command {command}")
    save(device, path)
    json.dump(as_json(credential), sys.stdout)


if __name__ == "__main__":
    main()
