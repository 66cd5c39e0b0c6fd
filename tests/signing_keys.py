"""A service-account key made in the test run, so gs:// URLs can be V4-signed without a Google account."""

from __future__ import annotations

import json
from pathlib import Path


def make_service_account_key(folder: Path,
                             email: str = "validibot-signer@validibot-test.iam.gserviceaccount.com") -> Path:
    """Write a fresh RSA service-account key file (the JSON layout Google issues) and return its path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "signer-key.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "validibot-test", "private_key_id": "test-key",
        "private_key": pem, "client_email": email, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return path
