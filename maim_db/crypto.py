"""Secrets at rest: AES-256-GCM under keys the database never sees.

``MAIMDB_SECRET_KEY`` seals; ``MAIMDB_SECRET_KEY_FALLBACKS`` (comma-separated) only opens, so a
rotation can run while every service still reads what the old key sealed. A sealed value
reads ``enc:v2:<key id>:<base64url(nonce ‖ ciphertext)>``; the key id (from the key itself)
says which key opens it, so a wrong key is named, not guessed. ``enc:v1:`` values (before key
ids) still open under any configured key. The associated data binds a value to where it is
stored (agent, table, row, column): a ciphertext copied into another agent's row or another
column does not open. Nothing here ever stores, or returns, a plaintext it was not given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import cache
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError, InputError

PREFIX: Final = "enc:"
V1: Final = "enc:v1:"
V2: Final = "enc:v2:"
ENV: Final = "MAIMDB_SECRET_KEY"
FALLBACKS_ENV: Final = "MAIMDB_SECRET_KEY_FALLBACKS"
#: What a secret may hold, in characters (docs/schema/agent-config.md).
MAX_CHARS: Final = 500
_NONCE: Final = 12


def new_key() -> str:
    """A fresh key for ``MAIMDB_SECRET_KEY`` (base64url of 32 random bytes)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


@dataclass(frozen=True, slots=True)
class Key:
    id: str  # 8 hex digits, derived from the key: safe to print and to store
    cipher: AESGCM
    mac_key: bytes  # a separate key for authenticating exports


def _key(raw: str, source: str) -> Key:
    try:
        material = base64.urlsafe_b64decode(raw.strip().encode())
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{source} is not valid base64url") from None
    if len(material) != 32:
        raise ConfigurationError(f"{source} must decode to 32 bytes, got {len(material)}")
    key_id = hmac.new(material, b"maim_db key id", hashlib.sha256).hexdigest()[:8]
    mac_key = HKDF(hashes.SHA256(), 32, salt=None, info=b"maim_db export tag").derive(material)
    return Key(key_id, AESGCM(material), mac_key)


@cache
def _ring(current: str, fallbacks: str) -> tuple[Key, ...]:
    keys = [_key(current, ENV)]
    keys += [_key(raw, FALLBACKS_ENV) for raw in fallbacks.split(",") if raw.strip()]
    return tuple(keys)


def keyring() -> tuple[Key, ...]:
    """The configured keys, the sealing one first."""
    current = os.environ.get(ENV)
    if not current:
        raise ConfigurationError(
            f"{ENV} is not set, so secrets cannot be sealed or opened: set it to a 32-byte "
            "key, e.g. the output of `maimdb secrets new-key`")
    return _ring(current, os.environ.get(FALLBACKS_ENV, ""))


def current() -> Key:
    """The key new values are sealed with."""
    return keyring()[0]


def by_id(key_id: str) -> Key:
    for key in keyring():
        if key.id == key_id:
            return key
    configured = ", ".join(k.id for k in keyring())
    raise ConfigurationError(
        f"sealed under key {key_id}, which is not configured (configured: {configured}); "
        f"set {ENV} to that key, or add it to {FALLBACKS_ENV} while a rotation runs")


def is_encrypted(value: str) -> bool:
    """Sealed by maim_db (any version). Text that merely starts with ``enc:`` is not."""
    return value.startswith((V1, V2))


def key_id_of(stored: str) -> str | None:
    """The key a value is sealed under; None for ``enc:v1:`` values, which carry none."""
    if stored.startswith(V2):
        return stored[len(V2):len(V2) + 8]
    return None


def is_current(stored: str) -> bool:
    return key_id_of(stored) == current().id


def encrypt(plaintext: str, context: str) -> str:
    key = current()
    nonce = os.urandom(_NONCE)
    sealed = key.cipher.encrypt(nonce, plaintext.encode(), context.encode())
    return f"{V2}{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(stored: str, context: str, *, v1_context: str | None = None) -> str:
    """The plaintext of a sealed value. A value that is not sealed (written around maim_db,
    by raw SQL) is refused, not passed through: it was never protected, and whoever wrote it
    could have put anything there. ``v1_context``: where ``enc:v1:`` values were bound
    differently."""
    if not is_encrypted(stored):
        raise InputError(f"the secret at {context} is stored unsealed (written around maim_db, "
                         "e.g. by raw SQL), so it is not revealed; write it again through "
                         "maim_db (`maimdb config set`)")
    if stored.startswith(V2):
        key_id, _, body = stored[len(V2):].partition(":")
        candidates: tuple[Key, ...] = (by_id(key_id),)
    else:
        body, candidates = stored[len(V1):], keyring()
        context = v1_context or context
    try:
        blob = base64.urlsafe_b64decode(body.encode())
    except (binascii.Error, ValueError):
        raise InputError(f"the secret at {context} is damaged (not base64url)") from None
    for key in candidates:
        try:
            return key.cipher.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode()).decode()
        except (InvalidTag, ValueError):
            continue
    raise InputError(f"the secret at {context} does not open with the configured keys: "
                     f"wrong {ENV}, or the value was moved from another row")


def reseal(stored: str, context: str, *, to_context: str | None = None) -> str:
    """``stored`` sealed under the current key (and ``to_context``, when it moves)."""
    if to_context is None and is_current(stored):
        return stored
    return encrypt(decrypt(stored, context), to_context or context)


def check_length(plaintext: str) -> None:
    if len(plaintext) > MAX_CHARS:
        raise InputError(f"a secret holds at most {MAX_CHARS} characters, got {len(plaintext)}")


def sign(data: bytes) -> tuple[str, str]:
    """(key id, HMAC-SHA-256 tag) of ``data`` under the current key's MAC key."""
    key = current()
    return key.id, hmac.new(key.mac_key, data, hashlib.sha256).hexdigest()


def verify(data: bytes, key_id: str, tag: str) -> bool:
    expected = hmac.new(by_id(key_id).mac_key, data, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, tag)
