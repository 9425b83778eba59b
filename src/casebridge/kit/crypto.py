"""Encryption of stored secrets (connector tokens, linked-service credentials) with CASEBRIDGE_SECRET_KEY.

The configured key may be any string; a 32-byte Fernet key is derived from it with HKDF-SHA256, so an
operator can paste a passphrase or the generated key alike. Fernet gives authenticated encryption
(AES-128-CBC + HMAC-SHA256): a ciphertext altered or made under another key fails to decrypt.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"casebridge stored-secrets v1"


class SecretDecryptionError(Exception):
    """The ciphertext was not made with this key (CASEBRIDGE_SECRET_KEY changed?) or was altered."""


class SecretBox:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("an empty secret key cannot encrypt anything")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted: CASEBRIDGE_SECRET_KEY differs from the key it was "
                "stored with, or the value was altered"
            ) from None
