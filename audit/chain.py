"""Appending to and verifying the audit chain.

`audit_append` is called inside the transaction of the change it records, so
an event is on the chain exactly when the change committed. Corrections are new
entries, never edits.

Each entry's hash is HMAC-SHA256, under a key from the environment
(audit.keys), over its canonical content and the previous entry's hash. The
chain is cut into segments, one per key: a segment starts with an
`audit.key_introduced` entry (the first key, sealing the entries from before
keys, which keep their plain SHA-256 hashes) or an `audit.key_rotated` entry
(a new key). Verification knows which key each segment used, refuses a key
change anywhere else, and refuses entries without a key after the first keyed
one: so whoever can write to the database but does not hold the key can edit
an entry and recompute nothing that verifies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.anchor import read_anchors
from audit.keys import ChainKey, current_key, known_keys

GENESIS = "0" * 64
KEY_INTRODUCED = "audit.key_introduced"
KEY_ROTATED = "audit.key_rotated"
SEGMENT_STARTS = (KEY_INTRODUCED, KEY_ROTATED)
CHAIN_SUBJECT = "audit_chain"


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


def compute_hash(*, key: ChainKey | None, **content: Any) -> str:
    """HMAC-SHA256 of the canonical content under `key`; plain SHA-256 for the
    entries from before keys (`key` None). `content` is canonical()'s arguments."""
    body = canonical(**content)
    if key is None:
        return hashlib.sha256(body).hexdigest()
    mac = key.mac()
    mac.update(body)
    return mac.hexdigest()


def _content(entry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "created_at": entry.created_at,
        "kind": entry.kind,
        "actor": entry.actor,
        "subject": entry.subject,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
    }


def entry_hash(entry, key: ChainKey | None = None) -> str:
    """The hash `entry` should have: under `key`, else under the key its `key_id`
    names (the current key for a new entry without one yet)."""
    if key is None and entry.key_id:
        key = known_keys().get(entry.key_id)
        if key is None:
            raise LookupError(f"key {entry.key_id} is not configured")
    return compute_hash(key=key, **_content(entry))


def actor_name(user=None, api_key=None) -> str:
    if api_key is not None:
        return f"api-key:{api_key.name}"
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return "system"


def segment_start_data(*, head_seq: int, head_hash: str, head_key_id: str, key: ChainKey, reason: str) -> dict:
    """What a segment's first entry records: which key follows which, and the
    head it seals (for the first key, the entries from before keys)."""
    return {
        "algorithm": "HMAC-SHA256",
        "key_id": key.key_id,
        "previous_key_id": head_key_id or None,
        "sealed_seq": head_seq,
        "sealed_hash": head_hash,
        "reason": reason,
    }


def _locked_head():
    from audit.models import AuditHead

    head, _ = AuditHead.objects.select_for_update().get_or_create(
        id=1, defaults={"seq": 0, "hash": GENESIS, "key_id": ""}
    )
    return head


def _append(head, key: ChainKey, *, kind: str, subject: str, data: dict, actor: str):
    from audit.models import AuditEntry

    # Round-trip through JSON so what is hashed is exactly what the database returns.
    clean = json.loads(json.dumps(data, sort_keys=True, default=str))
    entry = AuditEntry(
        seq=head.seq + 1,
        created_at=timezone.now(),
        kind=kind,
        actor=actor[:150],
        subject=subject[:200],
        data=clean,
        prev_hash=head.hash,
        key_id=key.key_id,
    )
    entry.hash = compute_hash(key=key, **_content(entry))
    entry.save()
    head.seq, head.hash, head.key_id = entry.seq, entry.hash, key.key_id
    head.save(update_fields=["seq", "hash", "key_id"])
    return entry


def _start_segment(head, key: ChainKey, *, reason: str, actor: str):
    return _append(
        head,
        key,
        kind=KEY_ROTATED if head.key_id else KEY_INTRODUCED,
        subject=CHAIN_SUBJECT,
        data=segment_start_data(
            head_seq=head.seq, head_hash=head.hash, head_key_id=head.key_id, key=key, reason=reason
        ),
        actor=actor,
    )


@transaction.atomic
def audit_append(*, kind: str, subject: str, data: dict | None = None, actor: str = "system"):
    """Append one entry after the current head (locked, so appends are serialised).

    The first entry under a key other than the head's starts a new segment by
    itself (an `audit.key_rotated` entry first), so a deploy with a new
    `AUDIT_CHAIN_KEY` never leaves an entry under an unannounced key."""
    head = _locked_head()
    key = current_key()
    if head.seq and head.key_id != key.key_id:
        _start_segment(head, key, reason="first entry under a new AUDIT_CHAIN_KEY", actor="system")
    return _append(head, key, kind=kind, subject=subject, data=data or {}, actor=actor)


class RotationRefused(Exception):
    """The key cannot be rotated now; the message says what to do."""


@transaction.atomic
def audit_key_rotate(*, reason: str, actor: str = "system"):
    """Start a new segment under the current `AUDIT_CHAIN_KEY` (set it to the new
    key and move the old one to `AUDIT_CHAIN_OLD_KEYS` first).

    The chain is verified first: a broken chain is not sealed under a new key."""
    if not reason.strip():
        raise RotationRefused("Give a reason for the rotation (it is recorded on the chain).")
    head = _locked_head()
    key = current_key()
    if head.seq and head.key_id == key.key_id:
        raise RotationRefused(
            f"The chain is already under AUDIT_CHAIN_KEY (key {key.key_id}). Set the new key as "
            "AUDIT_CHAIN_KEY and add the old one to AUDIT_CHAIN_OLD_KEYS, then run this again."
        )
    if head.key_id and head.key_id not in known_keys():
        raise RotationRefused(
            f"The current segment's key {head.key_id} is not configured: add it to AUDIT_CHAIN_OLD_KEYS, "
            "or its entries can no longer be verified."
        )
    report = verify_chain()
    if not report.ok:
        raise RotationRefused(f"The chain does not verify, so it is not sealed under a new key: {report.problem}")
    return _start_segment(head, key, reason=reason.strip(), actor=actor)


def current_head():
    from audit.models import AuditHead

    return AuditHead.objects.filter(id=1).first() or AuditHead(id=1, seq=0, hash=GENESIS, key_id="")


@dataclass(frozen=True)
class Segment:
    """A run of entries hashed under one key; number 0 is the entries from before keys."""

    number: int
    first_seq: int
    last_seq: int
    key_id: str
    key: str  # how verification describes the key

    def __str__(self) -> str:
        span = f"#{self.first_seq}–#{self.last_seq}" if self.last_seq != self.first_seq else f"#{self.first_seq}"
        return f"segment {self.number}: entries {span}, {self.key}"


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head: str
    problem: str = ""
    bad_seq: int | None = None
    segments: tuple[Segment, ...] = ()
    development_key: bool = False  # some segment is under the published development key
    anchors: int = 0  # heads from the anchor file found on the chain


_COLUMNS = ("seq", "created_at", "kind", "actor", "subject", "data", "prev_hash", "hash", "key_id")
_PLAIN = "plain SHA-256 (entries from before keys)"


class _Entry:
    __slots__ = _COLUMNS

    def __init__(self, row) -> None:
        for name, value in zip(_COLUMNS, row, strict=True):
            setattr(self, name, value)


class _Broken(Exception):
    def __init__(self, problem: str, seq: int | None) -> None:
        super().__init__(problem)
        self.problem, self.seq = problem, seq


class _Walk:
    """The state of one verification: where it is, and the segments behind it."""

    def __init__(self, expect_head: str | None) -> None:
        self.keys = known_keys()
        self.anchors, problem = read_anchors()
        if problem:
            raise _Broken(problem, None)
        self.expect_head = expect_head
        self.seen_expected = expect_head is None or expect_head == GENESIS
        self.anchors_seen = 0
        self.prev_hash, self.seq, self.count = GENESIS, 0, 0
        self.segments: list[Segment] = []
        self.first, self.key_id, self.key = 0, None, None

    def current(self, last: int | None = None) -> Segment | None:
        """The segment being walked, up to `last` (by default the last entry verified)."""
        last = self.seq if last is None else last
        if self.key_id is None or last < self.first:
            return None
        number = 0 if self.key_id == "" else sum(1 for s in self.segments if s.key_id) + 1
        label = self.key.describe() if self.key else _PLAIN
        return Segment(number, self.first, last, self.key_id, label)

    def all_segments(self) -> tuple[Segment, ...]:
        current = self.current()
        return (*self.segments, current) if current else tuple(self.segments)

    def step(self, entry: _Entry) -> None:
        if entry.seq != self.seq + 1:
            raise _Broken(f"entry #{self.seq + 1} is missing: deleted out of band", self.seq + 1)
        if entry.prev_hash != self.prev_hash:
            raise _Broken(
                f"entry #{entry.seq} does not follow #{entry.seq - 1}: inserted or re-linked out of band", entry.seq
            )
        if entry.key_id != self.key_id:
            self.change_key(entry)
        if compute_hash(key=self.key, **_content(entry)) != entry.hash:
            segment = self.current(entry.seq)
            raise _Broken(
                f"entry #{entry.seq} was edited or forged: its content no longer matches its hash "
                f"(segment {segment.number}, {segment.key})",
                entry.seq,
            )
        if entry.hash == self.expect_head:
            self.seen_expected = True
        anchored = self.anchors.pop(entry.seq, None)
        if anchored is not None:
            if anchored.hash != entry.hash:
                raise _Broken(
                    f"entry #{entry.seq} is not the one anchored at {anchored.at} ({anchored.hash}): "
                    "the chain was rewritten from there on",
                    entry.seq,
                )
            self.anchors_seen += 1
        self.prev_hash, self.seq, self.count = entry.hash, entry.seq, self.count + 1

    def change_key(self, entry: _Entry) -> None:
        """A new segment starts only with a segment-start entry (or the first entry of all), and
        entries without a key only come before the first keyed one."""
        if entry.key_id == "" and self.key_id:
            raise _Broken(
                f"entry #{entry.seq} has no key after keyed entries: rewritten with plain SHA-256 out of band",
                entry.seq,
            )
        if self.key_id is not None and entry.kind not in SEGMENT_STARTS:
            raise _Broken(
                f"entry #{entry.seq} changes the key (from {self.key_id or 'none'} to {entry.key_id}) "
                "without a key-rotation entry: forged",
                entry.seq,
            )
        key = self.keys.get(entry.key_id) if entry.key_id else None
        if entry.key_id and key is None:
            raise _Broken(
                f"entry #{entry.seq} starts a segment under key {entry.key_id}, which is neither "
                "AUDIT_CHAIN_KEY nor in AUDIT_CHAIN_OLD_KEYS: add that key to verify it",
                entry.seq,
            )
        current = self.current()
        if current:
            self.segments.append(current)
        self.first, self.key_id, self.key = entry.seq, entry.key_id, key

    def finish(self) -> None:
        from audit.models import AuditHead

        if self.key_id == "":
            raise _Broken(
                f"the chain ends at #{self.seq} without a key: the key-introduction entry is missing "
                "(run `manage.py migrate`), or the chain was rewritten with plain SHA-256 out of band",
                self.seq,
            )
        head = AuditHead.objects.filter(id=1).first()
        if head is not None and (head.seq != self.seq or head.hash != self.prev_hash):
            raise _Broken(
                f"the chain ends at #{self.seq} but its head says #{head.seq}: entries after "
                f"#{self.seq} were deleted out of band",
                self.seq + 1,
            )
        if self.anchors:
            seq = min(self.anchors)
            raise _Broken(
                f"the head anchored at {self.anchors[seq].at} (#{seq} {self.anchors[seq].hash}) is past the end "
                f"of the chain (#{self.seq}): entries were deleted out of band",
                self.seq + 1,
            )
        if not self.seen_expected:
            raise _Broken(
                f"the expected head {self.expect_head} is not on the chain: entries were deleted or the chain "
                "was rebuilt",
                None,
            )


def verify_chain(*, expect_head: str | None = None, batch: int = 2000) -> ChainReport:
    """Walk the chain from the first entry and report the first one that was
    edited, inserted or deleted out of band, and each segment and key it verified.

    Without `expect_head` or the anchor file a deletion of the newest entries
    cannot be seen (the chain is still consistent); with a head hash written down
    earlier it can: that hash must still be on the chain.
    """
    from audit.models import AuditEntry

    try:
        walk = _Walk(expect_head)
    except _Broken as broken:
        return ChainReport(False, 0, GENESIS, broken.problem, broken.seq)
    try:
        while True:
            rows = AuditEntry.objects.filter(seq__gt=walk.seq).order_by("seq").values_list(*_COLUMNS)[:batch]
            rows = [_Entry(r) for r in rows]
            if not rows:
                break
            for entry in rows:
                walk.step(entry)
        walk.finish()
    except _Broken as broken:
        segments = walk.all_segments()
        return ChainReport(False, walk.count, walk.prev_hash, broken.problem, broken.seq, segments, _dev(segments))
    segments = walk.all_segments()
    return ChainReport(
        True, walk.count, walk.prev_hash, segments=segments, development_key=_dev(segments), anchors=walk.anchors_seen
    )


def _dev(segments) -> bool:
    keys = known_keys()
    return any(keys[s.key_id].is_development for s in segments if s.key_id and s.key_id in keys)
