"""The keys the audit chain is hashed with.

Each entry's hash is HMAC-SHA256 under a key from the environment
(`AUDIT_CHAIN_KEY`), never stored in the database, so someone who can write
to the database but cannot read the web processes' environment cannot
recompute the chain after editing it. An entry records only the key's id (a
fingerprint that does not reveal the key), so verification knows which key to
use. Entries from before keys were introduced have no key id and a plain
SHA-256 hash; they can only be a prefix of the chain (audit.chain).

Rotation: set the new key as `AUDIT_CHAIN_KEY`, keep the old ones in
`AUDIT_CHAIN_OLD_KEYS` (comma-separated) so the earlier segments still verify,
and run `manage.py rotate_audit_chain_key --reason …` (the first append under
a new key starts the new segment by itself too). docs/audit.md.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

CURRENT = "AUDIT_CHAIN_KEY"
OLD = "AUDIT_CHAIN_OLD_KEYS"
DEVELOPMENT = "the development key"


@dataclass(frozen=True)
class ChainKey:
    key_id: str
    secret: bytes
    source: str  # CURRENT, OLD or DEVELOPMENT

    @property
    def is_development(self) -> bool:
        return self.source == DEVELOPMENT

    def describe(self) -> str:
        if self.is_development:
            return f"key {self.key_id} (the published DEVELOPMENT key: anyone can recompute this chain)"
        return f"key {self.key_id} ({self.source})"

    def mac(self):
        """A fresh HMAC-SHA256 keyed with this key (copy() it per message)."""
        return hmac.new(self.secret, digestmod=hashlib.sha256)


def key_id_of(secret: bytes) -> str:
    """A public fingerprint of a key: it names the key without revealing it."""
    return hmac.new(secret, b"fsar audit chain key id", hashlib.sha256).hexdigest()[:16]


@lru_cache(maxsize=8)
def _ring(current: str, old: tuple[str, ...], dev: str) -> tuple[ChainKey, dict[str, ChainKey]]:
    # The development key is published in the source: a chain keyed with it is no
    # better than plain SHA-256. settings.py refuses it when DEBUG is off; with
    # DEBUG on, /audit/ and verify_audit_chain say loudly that it is in use.
    keys: dict[str, ChainKey] = {}
    for text in old:
        secret = text.encode()
        keys[key_id_of(secret)] = ChainKey(key_id_of(secret), secret, DEVELOPMENT if text == dev else OLD)
    secret = current.encode()
    now = ChainKey(key_id_of(secret), secret, DEVELOPMENT if current == dev else CURRENT)
    keys[now.key_id] = now
    return now, keys


def _settings_ring() -> tuple[ChainKey, dict[str, ChainKey]]:
    return _ring(settings.AUDIT_CHAIN_KEY, tuple(settings.AUDIT_CHAIN_OLD_KEYS), settings.AUDIT_CHAIN_DEV_KEY)


def current_key() -> ChainKey:
    """The key new entries are hashed with."""
    return _settings_ring()[0]


def known_keys() -> dict[str, ChainKey]:
    """Every key verification can use, by id: the current one and the old ones."""
    return _settings_ring()[1]
