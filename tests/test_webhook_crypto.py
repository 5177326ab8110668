"""Webhook crypto against the self-made vector of akool-api.md §10."""

from __future__ import annotations

import pytest

from i2v_pipeline.webhook_crypto import open_sealed, seal, signature

CLIENT_ID = "test-client-id-0001"
SECRET = "abcdefghijklmnopqrstuvwx"
BODY = {
    "signature": "6d752740f3f347189a225c61cf8bc238719d617e",
    "dataEncrypt": "pwgBa28LPVRv7oLWryr57OgUHStUlyM75IXsXPUDCxyrZ+YW1k0trZ7U/k5ldMcF0uZkfQ56PO49"
    "fPXq3c/Jh"
    "hRB0Wv5Pdl6yNc6TlDniqj9JLNTuI4fTFNTznCtV/3kz3h2uHOk/7FrW5U9kEd9oQ==",
    "timestamp": 1710757981609,
    "nonce": "1529",
}


def test_vector_verifies_and_decrypts() -> None:
    """The documented vector: signature matches, AES-192-CBC payload decrypts."""
    assert open_sealed(BODY, CLIENT_ID, SECRET) == {
        "_id": "689174694b4dbdd4ab3d28c9",
        "status": 3,
        "type": "image2video",
        "url": "https://example.com/v.mp4",
    }


def test_numeric_nonce_signs_like_string() -> None:
    """A nonce sent as a number signs the same as its string."""
    assert signature(CLIENT_ID, 1, 1529, "x") == signature(CLIENT_ID, "1", "1529", "x")


def test_tampering_is_refused() -> None:
    """A changed payload fails the signature check."""
    with pytest.raises(ValueError, match="signature"):
        open_sealed({**BODY, "nonce": "1530"}, CLIENT_ID, SECRET)


def test_round_trip_aes256() -> None:
    """A 32-byte secret gives AES-256 and still round-trips."""
    body = seal({"_id": "a", "status": 2}, "short", "k" * 32, 1, "2")
    assert open_sealed(body, "short", "k" * 32) == {"_id": "a", "status": 2}
