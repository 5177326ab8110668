"""AKOOL webhook crypto (akool-api.md §10): SHA-1 signature and AES-CBC payload encryption.

signature = sha1_hex("".join(sorted([client_id, str(timestamp), str(nonce), data_encrypt])))
data_encrypt = base64(AES-CBC(key=client_secret, iv=client_id[:16] NUL-padded, PKCS#7(json)))
The key length follows the secret (24 bytes: AES-192, 32: AES-256), as CryptoJS and the
official Python receiver do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _iv(client_id: str) -> bytes:
    return client_id.encode()[:16].ljust(16, b"\0")


def _cipher(client_id: str, client_secret: str) -> Cipher[modes.CBC]:
    key = client_secret.encode()
    if len(key) not in (16, 24, 32):
        raise ValueError("the client secret must be 16, 24 or 32 bytes for AES")
    return Cipher(algorithms.AES(key), modes.CBC(_iv(client_id)))


def signature(client_id: str, timestamp: int | str, nonce: int | str, data_encrypt: str) -> str:
    """AKOOL's webhook signature: sha1 over the sorted, joined parts."""
    parts = sorted([client_id, str(timestamp), str(nonce), data_encrypt])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def encrypt(payload: dict[str, Any], client_id: str, client_secret: str) -> str:
    """AES-CBC (key: client secret, IV from client id) as AKOOL encrypts webhook bodies."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(json.dumps(payload, separators=(",", ":")).encode()) + padder.finalize()
    enc = _cipher(client_id, client_secret).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def decrypt(data_encrypt: str, client_id: str, client_secret: str) -> dict[str, Any]:
    """The inverse of encrypt: a webhook's `dataEncrypt` back to its JSON payload."""
    dec = _cipher(client_id, client_secret).decryptor()
    raw = dec.update(base64.b64decode(data_encrypt)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    result: dict[str, Any] = json.loads(unpadder.update(raw) + unpadder.finalize())
    return result


def seal(
    payload: dict[str, Any], client_id: str, client_secret: str, timestamp: int, nonce: str
) -> dict[str, Any]:
    """The body AKOOL posts to a webhook."""
    data = encrypt(payload, client_id, client_secret)
    return {
        "signature": signature(client_id, timestamp, nonce, data),
        "dataEncrypt": data,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def open_sealed(body: dict[str, Any], client_id: str, client_secret: str) -> dict[str, Any]:
    """Verify and decrypt a webhook body. ValueError if the signature does not match."""
    expected = signature(client_id, body["timestamp"], body["nonce"], body["dataEncrypt"])
    if not hmac.compare_digest(expected, str(body.get("signature", ""))):
        raise ValueError("webhook signature does not match")
    return decrypt(body["dataEncrypt"], client_id, client_secret)
