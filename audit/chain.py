"""Appending to and verifying the audit chain.

`audit_append` is called inside the transaction of the change it records, so
an event is on the chain exactly when the change committed. Corrections are new
entries, never edits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def canonical(
    *, seq: int, created_at: datetime, kind: str, actor: str, subject: str, data: Any, prev_hash: str
) -> bytes:
    """The bytes an entry's hash covers: sorted-key JSON, no whitespace, UTC microseconds."""
    body = {
        "seq": seq,
        "created_at": created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": kind,
        "actor": actor,
        "subject": subject,
        "data": data,
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(
        canonical(
            seq=entry.seq,
            created_at=entry.created_at,
            kind=entry.kind,
            actor=entry.actor,
            subject=entry.subject,
            data=entry.data,
            prev_hash=entry.prev_hash,
        )
    ).hexdigest()


def actor_name(user=None, api_key=None) -> str:
    if api_key is not None:
        return f"api-key:{api_key.name}"
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return "system"


@transaction.atomic
def audit_append(*, kind: str, subject: str, data: dict | None = None, actor: str = "system") -> AuditEntry:
    """Append one entry after the current head (locked, so appends are serialised)."""
    head, _ = AuditHead.objects.select_for_update().get_or_create(id=1, defaults={"seq": 0, "hash": GENESIS})
    # Round-trip through JSON so what is hashed is exactly what the database returns.
    clean = json.loads(json.dumps(data or {}, sort_keys=True, default=str))
    entry = AuditEntry(
        seq=head.seq + 1,
        created_at=timezone.now(),
        kind=kind,
        actor=actor[:150],
        subject=subject[:200],
        data=clean,
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    entry.save()
    head.seq, head.hash = entry.seq, entry.hash
    head.save(update_fields=["seq", "hash"])
    return entry


def current_head() -> AuditHead:
    return AuditHead.objects.filter(id=1).first() or AuditHead(id=1, seq=0, hash=GENESIS)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head: str
    problem: str = ""
    bad_seq: int | None = None


def verify_chain(*, expect_head: str | None = None, batch: int = 2000) -> ChainReport:
    """Walk the chain from the first entry and report the first one that was
    edited, inserted or deleted out of band.

    Without `expect_head` a deletion of the newest entries cannot be seen (the
    chain is still consistent); with the head hash written down earlier it can:
    that hash must still be on the chain.
    """
    prev_hash, expected_seq, count = GENESIS, 1, 0
    seen_expected = expect_head is None or expect_head == GENESIS
    last_seq = 0
    while True:
        rows = list(AuditEntry.objects.filter(seq__gte=expected_seq).order_by("seq")[:batch])
        if not rows:
            break
        for entry in rows:
            if entry.seq != expected_seq:
                return ChainReport(
                    False, count, prev_hash, f"entry #{expected_seq} is missing: deleted out of band", expected_seq
                )
            if entry.prev_hash != prev_hash:
                return ChainReport(
                    False,
                    count,
                    prev_hash,
                    f"entry #{entry.seq} does not follow #{entry.seq - 1}: inserted or re-linked out of band",
                    entry.seq,
                )
            if entry_hash(entry) != entry.hash:
                return ChainReport(
                    False,
                    count,
                    prev_hash,
                    f"entry #{entry.seq} was edited or forged: its content no longer matches its hash",
                    entry.seq,
                )
            if entry.hash == expect_head:
                seen_expected = True
            prev_hash, expected_seq, count, last_seq = entry.hash, expected_seq + 1, count + 1, entry.seq
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        return ChainReport(
            False,
            count,
            prev_hash,
            f"the chain ends at #{last_seq} but its head says #{head.seq}: entries after "
            f"#{last_seq} were deleted out of band",
            last_seq + 1,
        )
    if not seen_expected:
        return ChainReport(
            False,
            count,
            prev_hash,
            f"the expected head {expect_head} is not on the chain: entries were deleted or the chain was rebuilt",
            None,
        )
    return ChainReport(True, count, prev_hash)
