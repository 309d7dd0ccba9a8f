"""The chain's head, anchored outside the database.

Someone who can write to the database can delete the newest entries and fix
the head row; only a head recorded elsewhere shows it. The daily job
(audit.jobs) mails the verified head to every operator and, when
`AUDIT_ANCHOR_FILE` names a path, appends it to that file: one line per day,
`<UTC time> <seq> <hash> <key id>`. Open it for appending only (and make it
append-only, e.g. `chattr +a`, or put it on storage the database's
administrators cannot write). Verification reads it back: every anchored head
must still be on the chain, at its number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings


@dataclass(frozen=True)
class Anchor:
    at: str
    seq: int
    hash: str
    key_id: str


def anchor_line(*, seq: int, hash: str, key_id: str, at: datetime) -> str:
    return f"{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {seq} {hash} {key_id or '-'}\n"


def append_anchor(*, seq: int, hash: str, key_id: str, at: datetime) -> str | None:
    """Append the head to the anchor file, if one is configured; returns its path."""
    path = settings.AUDIT_ANCHOR_FILE
    if not path:
        return None
    # O_APPEND: every write lands at the end, whatever else has the file open.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a", encoding="ascii") as out:
        out.write(anchor_line(seq=seq, hash=hash, key_id=key_id, at=at))
        out.flush()
        os.fsync(out.fileno())
    return path


def read_anchors() -> tuple[dict[int, Anchor], str]:
    """The anchored heads by number, and a problem if the file cannot be read as written."""
    path = settings.AUDIT_ANCHOR_FILE
    if not path or not os.path.exists(path):
        return {}, ""
    anchors: dict[int, Anchor] = {}
    try:
        with open(path, encoding="ascii") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 4 or not parts[1].isdigit() or len(parts[2]) != 64:
                    return {}, f"{path} line {number} is not `<time> <seq> <hash> <key id>`: {line.strip()[:120]!r}"
                anchor = Anchor(parts[0], int(parts[1]), parts[2], "" if parts[3] == "-" else parts[3])
                earlier = anchors.get(anchor.seq)
                if earlier is not None and earlier.hash != anchor.hash:
                    return {}, (
                        f"{path} anchors entry #{anchor.seq} twice with different hashes "
                        f"({earlier.at} and {anchor.at}): the chain was rewritten between them"
                    )
                anchors[anchor.seq] = anchor
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"the anchor file {path} cannot be read: {exc}"
    return anchors, ""
