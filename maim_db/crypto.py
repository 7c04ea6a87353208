"""Secrets at rest: AES-256-GCM with a key from ``MAIMDB_SECRET_KEY``.

A stored secret reads ``enc:v1:<base64url(nonce ‖ ciphertext)>``. The associated data binds
it to where it is stored (agent, provider, column), so a ciphertext copied into another
agent's row or another column does not decrypt. Without a key configured, storing a secret
is refused — never silently stored in plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError, InputError

PREFIX: Final = "enc:v1:"
ENV: Final = "MAIMDB_SECRET_KEY"


def new_key() -> str:
    """A fresh key for ``MAIMDB_SECRET_KEY`` (base64url of 32 random bytes)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _cipher() -> AESGCM:
    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigurationError(
            f"{ENV} is not set, so secrets cannot be stored: set it to a 32-byte key, "
            "e.g. the output of `python -c 'import maim_db.crypto as c; print(c.new_key())'`")
    try:
        key = base64.urlsafe_b64decode(raw.encode())
    except (binascii.Error, ValueError) as err:
        raise ConfigurationError(f"{ENV} is not valid base64url") from err
    if len(key) != 32:
        raise ConfigurationError(f"{ENV} must decode to 32 bytes, got {len(key)}")
    return AESGCM(key)


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(plaintext: str, context: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher().encrypt(nonce, plaintext.encode(), context.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt(stored: str, context: str) -> str:
    if not is_encrypted(stored):
        return stored  # written before encryption (e.g. by raw SQL): returned as is
    cipher = _cipher()
    try:
        blob = base64.urlsafe_b64decode(stored[len(PREFIX):].encode())
        return cipher.decrypt(blob[:12], blob[12:], context.encode()).decode()
    except (InvalidTag, ValueError) as err:  # binascii.Error and a short nonce are ValueErrors
        raise InputError(f"a stored secret does not decrypt for {context}: wrong "
                         f"{ENV}, or the value was moved from another row") from err
