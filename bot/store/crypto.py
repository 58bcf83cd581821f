"""Encryption of stored secrets (Bitrix24 webhook codes) with rotating Fernet keys."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


class SecretBox:
    """Encrypts with the first key and decrypts with any of them, so keys can be rotated."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(key.get_secret_value()) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> SecretStr:
        try:
            return SecretStr(self._fernet.decrypt(token.encode("ascii")).decode("utf-8"))
        except (InvalidToken, ValueError) as exc:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted with the configured B24MAIL_SECRET_KEYS; "
                "was a key removed before `b24mail rotate-keys` ran?"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the first key (a no-op in meaning, new ciphertext)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError) as exc:
            raise SecretDecryptionError("a stored secret cannot be decrypted for rotation") from exc
