"""A software authenticator for the tests, outside the project: PyPI's
soft-webauthn (a P-256 key, 'none' attestation, a signature counter),
speaking the server's WebAuthn JSON.

    python3 authenticator.py create STATE ORIGIN [FLAGS] < creation-options.json
    python3 authenticator.py get STATE ORIGIN [FLAGS] < request-options.json

Each prints the PublicKeyCredential as JSON (binary fields base64url) and
keeps the authenticator (its key and counter) in the file STATE, so a copy
of that file is a cloned authenticator. soft-webauthn only ever reports user
presence; FLAGS (`uv`, `be`, comma-separated) sets the user-verified and
backup-eligible-and-backed-up bits in its authenticator data, re-signing the
assertion with the same key.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.utils import sha256
from soft_webauthn import SoftWebauthnDevice

FLAG_BITS = {"uv": 0x04, "be": 0x08 | 0x10}


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


def with_flags(device, credential, bits):
    """Sets `bits` in the flags byte (after the 32-byte RP id hash)."""
    response = credential["response"]
    if "attestationObject" in response:
        attestation = cbor.decode(response["attestationObject"])
        data = bytearray(attestation["authData"])
        data[32] |= bits
        attestation["authData"] = bytes(data)
        response["attestationObject"] = cbor.encode(attestation)
    else:
        data = bytearray(response["authenticatorData"])
        data[32] |= bits
        response["authenticatorData"] = bytes(data)
        signed = bytes(data) + sha256(response["clientDataJSON"])
        response["signature"] = device.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return credential


def main():
    command, path, origin = sys.argv[1:4]
    flags = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else []
    bits = 0
    for flag in flags:
        bits |= FLAG_BITS[flag]
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
    if bits:
        credential = with_flags(device, credential, bits)
    save(device, path)
    json.dump(as_json(credential), sys.stdout)


if __name__ == "__main__":
    main()
