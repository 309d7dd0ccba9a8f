"""The keyed audit chain: someone who can write to the database but does not
hold AUDIT_CHAIN_KEY cannot edit the record and recompute it; keys rotate in
recorded segments; the head is anchored outside the database; an existing
chain is sealed under the key by a recorded entry, not rewritten."""

import hashlib
import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS, audit_append, canonical, current_head, verify_chain
from audit.keys import current_key, key_id_of
from audit.models import AuditEntry, AuditHead

pytestmark = pytest.mark.django_db

KEY_A = "a" * 64
KEY_B = "b" * 64


@pytest.fixture
def keyed(settings):
    settings.AUDIT_CHAIN_KEY = KEY_A
    settings.AUDIT_CHAIN_OLD_KEYS = []
    return settings


@pytest.fixture
def five(keyed):
    return [audit_append(kind="vote.cast", subject=f"case:{i}", actor="alice", data={"n": i}) for i in range(1, 6)]


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit_chain", *args, stdout=out, stderr=out)
    return out.getvalue()


def sha256_of(row: dict) -> str:
    return hashlib.sha256(canonical(**{k: row[k] for k in CONTENT})).hexdigest()


CONTENT = ("seq", "created_at", "kind", "actor", "subject", "data", "prev_hash")


def rows() -> list[dict]:
    return list(AuditEntry.objects.order_by("seq").values(*CONTENT, "hash", "key_id"))


def recompute_with_sha256_from(seq: int, *, clear_key_ids: bool) -> None:
    """What an attacker with only the database can do: recompute every hash from
    `seq` on with plain SHA-256, re-link each entry, and fix the head."""
    prev = None
    for row in rows():
        if row["seq"] < seq:
            prev = row["hash"]
            continue
        row["prev_hash"] = prev if prev is not None else GENESIS
        row["hash"] = sha256_of(row)
        key_id = "" if clear_key_ids else row["key_id"]
        sql(
            "UPDATE audit_auditentry SET prev_hash = %s, hash = %s, key_id = %s WHERE seq = %s",
            [row["prev_hash"], row["hash"], key_id, row["seq"]],
        )
        prev = row["hash"]
    sql("UPDATE audit_audithead SET hash = %s, key_id = %s", [prev, "" if clear_key_ids else current_key().key_id])


def consistent_under_sha256(from_seq: int = 1) -> bool:
    """The recomputed chain is internally consistent: every link, and every plain SHA-256
    from `from_seq` on, holds (what verification checked before keys)."""
    prev = GENESIS
    for row in rows():
        if row["prev_hash"] != prev or (row["seq"] >= from_seq and sha256_of(row) != row["hash"]):
            return False
        prev = row["hash"]
    return current_head().hash == prev


def test_the_key_is_never_stored_in_the_database(five):
    dumped = [str(v) for row in AuditEntry.objects.values_list() for v in row]
    dumped += [str(v) for row in AuditHead.objects.values_list() for v in row]
    assert not any(KEY_A in v for v in dumped)
    assert {r["key_id"] for r in rows()} == {key_id_of(KEY_A.encode())}


@pytest.mark.parametrize("clear_key_ids", [False, True], ids=["keeping-key-ids", "claiming-no-key"])
def test_an_attacker_with_the_database_who_edits_an_entry_and_recomputes_every_later_hash_is_caught(
    five, clear_key_ids
):
    sql("UPDATE audit_auditentry SET data = %s WHERE seq = 3", ['{"n": 3, "choice": "reject"}'])
    start = 1 if clear_key_ids else 3
    recompute_with_sha256_from(start, clear_key_ids=clear_key_ids)
    # The door: with plain SHA-256 (the old chain) this rewrite verified, every link and hash consistent.
    assert consistent_under_sha256(start)
    report = verify_chain()
    assert not report.ok
    if clear_key_ids:
        assert "without a key" in report.problem  # a chain that ends without a key was rewritten
    else:
        assert report.bad_seq == 3 and "entry #3 was edited or forged" in report.problem
        assert f"segment 1, key {key_id_of(KEY_A.encode())} (AUDIT_CHAIN_KEY)" in report.problem
    with pytest.raises(CommandError, match="BROKEN"):
        verify()


def test_rewriting_only_the_tail_without_keys_is_caught_where_the_keys_stop(five):
    sql("UPDATE audit_auditentry SET actor = 'mallory' WHERE seq = 4")
    recompute_with_sha256_from(4, clear_key_ids=True)
    report = verify_chain()
    assert not report.ok and report.bad_seq == 4
    assert "entry #4 has no key after keyed entries" in report.problem


def test_an_edited_entry_whose_own_hash_was_recomputed_is_reported_at_the_next_entry(five):
    """Whoever recomputes the edited entry's own hash (here with the key itself) still
    breaks the link the next entry holds: the report names that next entry, re-linked."""
    from audit.chain import entry_hash

    entry = AuditEntry.objects.get(seq=3)
    entry.actor = "mallory"
    sql("UPDATE audit_auditentry SET actor = 'mallory', hash = %s WHERE seq = 3", [entry_hash(entry)])
    report = verify_chain()
    assert not report.ok and report.bad_seq == 4
    assert report.problem.startswith("entry #4 does not follow #3: inserted or re-linked")


def test_a_forged_entry_without_the_key_is_caught_at_itself(five):
    forged = dict(rows()[-1])
    forged.update(seq=6, kind="case.approved", actor="alice", subject="case:9", data={}, prev_hash=five[-1].hash)
    for key_id in (five[-1].key_id, ""):  # claiming the chain's key, or none
        sql("DELETE FROM audit_auditentry WHERE seq = 6")
        sql(
            "INSERT INTO audit_auditentry (seq, created_at, kind, actor, subject, data, prev_hash, hash, key_id) "
            "VALUES (6, %s, 'case.approved', 'alice', 'case:9', '{}', %s, %s, %s)",
            [forged["created_at"], forged["prev_hash"], sha256_of(forged), key_id],
        )
        sql("UPDATE audit_audithead SET seq = 6, hash = %s", [sha256_of(forged)])
        report = verify_chain()
        assert not report.ok and report.bad_seq == 6


def test_verify_reports_each_segment_and_its_key(five):
    out = verify()
    key_id = key_id_of(KEY_A.encode())
    assert "Audit chain OK: 5 entries." in out
    assert f"segment 1: entries #1–#5, key {key_id} (AUDIT_CHAIN_KEY): verified" in out
    assert "DEVELOPMENT" not in out
    report = verify_chain()
    assert [(s.number, s.first_seq, s.last_seq, s.key_id) for s in report.segments] == [(1, 1, 5, key_id)]


def test_without_a_key_in_debug_the_development_key_is_used_and_said_loudly(settings, client, operator):
    settings.AUDIT_CHAIN_KEY = settings.AUDIT_CHAIN_DEV_KEY  # what DEBUG gives without AUDIT_CHAIN_KEY
    audit_append(kind="vote.cast", subject="case:1")
    assert current_key().is_development
    out = verify()
    assert "WARNING: entries are keyed with the published DEVELOPMENT key" in out
    assert "the published DEVELOPMENT key: anyone can recompute this chain" in out
    client.force_login(operator)
    page = client.get("/audit/").content.decode()
    assert 'data-testid="audit-dev-key"' in page and "DEVELOPMENT KEY" in page


def test_with_a_real_key_the_audit_page_names_it_and_has_no_warning(five, client, operator):
    client.force_login(operator)
    page = client.get("/audit/").content.decode()
    assert 'data-testid="audit-dev-key"' not in page
    assert key_id_of(KEY_A.encode()) in page


def test_rotation_starts_a_new_segment_and_old_segments_verify_with_the_old_key(five, keyed):
    keyed.AUDIT_CHAIN_KEY, keyed.AUDIT_CHAIN_OLD_KEYS = KEY_B, [KEY_A]
    out = StringIO()
    call_command("rotate_audit_chain_key", "--reason", "yearly rotation", "--by", "olivia", stdout=out)
    entry = AuditEntry.objects.get(seq=6)
    assert (entry.kind, entry.actor, entry.key_id) == ("audit.key_rotated", "olivia", key_id_of(KEY_B.encode()))
    assert entry.data["previous_key_id"] == key_id_of(KEY_A.encode())
    assert entry.data["sealed_seq"] == 5 and entry.data["sealed_hash"] == five[-1].hash
    audit_append(kind="vote.cast", subject="case:7")
    text = verify()
    assert f"segment 1: entries #1–#5, key {key_id_of(KEY_A.encode())} (AUDIT_CHAIN_OLD_KEYS): verified" in text
    assert f"segment 2: entries #6–#7, key {key_id_of(KEY_B.encode())} (AUDIT_CHAIN_KEY): verified" in text

    # Without the old key its segment cannot be verified, and verification says which key to add.
    keyed.AUDIT_CHAIN_OLD_KEYS = []
    report = verify_chain()
    assert not report.ok and report.bad_seq == 1
    assert f"key {key_id_of(KEY_A.encode())}, which is neither AUDIT_CHAIN_KEY nor in AUDIT_CHAIN_OLD_KEYS" in (
        report.problem
    )


def test_rotation_is_refused_when_the_key_did_not_change_or_the_old_one_is_missing(five, keyed):
    with pytest.raises(CommandError, match="already under AUDIT_CHAIN_KEY"):
        call_command("rotate_audit_chain_key", "--reason", "oops")
    keyed.AUDIT_CHAIN_KEY = KEY_B
    with pytest.raises(CommandError, match="not configured: add it to AUDIT_CHAIN_OLD_KEYS"):
        call_command("rotate_audit_chain_key", "--reason", "new key")
    assert AuditEntry.objects.count() == 5


def test_rotation_does_not_seal_a_broken_chain(five, keyed):
    sql("UPDATE audit_auditentry SET actor = 'mallory' WHERE seq = 2")
    keyed.AUDIT_CHAIN_KEY, keyed.AUDIT_CHAIN_OLD_KEYS = KEY_B, [KEY_A]
    with pytest.raises(CommandError, match="does not verify.*entry #2 was edited"):
        call_command("rotate_audit_chain_key", "--reason", "cover it up")
    assert AuditEntry.objects.count() == 5


def test_the_first_entry_under_a_new_key_starts_its_segment_by_itself(five, keyed):
    keyed.AUDIT_CHAIN_KEY, keyed.AUDIT_CHAIN_OLD_KEYS = KEY_B, [KEY_A]
    entry = audit_append(kind="vote.cast", subject="case:6")
    assert entry.seq == 7
    start = AuditEntry.objects.get(seq=6)
    assert start.kind == "audit.key_rotated" and start.data["reason"] == "first entry under a new AUDIT_CHAIN_KEY"
    assert [s.key_id for s in verify_chain().segments] == [key_id_of(KEY_A.encode()), key_id_of(KEY_B.encode())]


def test_a_leaked_old_key_cannot_forge_entries_in_the_new_segment(five, keyed):
    """After a rotation (because the old key leaked), its holder re-signs a new-segment
    entry under the old key: the key changes without a rotation entry, which is refused."""
    from audit.chain import entry_hash
    from audit.keys import known_keys

    keyed.AUDIT_CHAIN_KEY, keyed.AUDIT_CHAIN_OLD_KEYS = KEY_B, [KEY_A]
    call_command("rotate_audit_chain_key", "--reason", "key A leaked", stdout=StringIO())
    audit_append(kind="case.rejected", subject="case:7")
    old = known_keys()[key_id_of(KEY_A.encode())]
    entry = AuditEntry.objects.get(seq=7)
    entry.kind, entry.key_id = "case.approved", old.key_id
    sql(
        "UPDATE audit_auditentry SET kind = %s, key_id = %s, hash = %s WHERE seq = 7",
        [entry.kind, entry.key_id, entry_hash(entry, old)],
    )
    sql("UPDATE audit_audithead SET hash = (SELECT hash FROM audit_auditentry WHERE seq = 7)")
    report = verify_chain()
    assert not report.ok and report.bad_seq == 7
    assert "changes the key" in report.problem and "without a key-rotation entry" in report.problem


def _legacy_chain(n: int) -> list[dict]:
    """Entries as they were before keys: plain SHA-256, no key id."""
    prev, made = GENESIS, []
    for seq in range(1, n + 1):
        row = {
            "seq": seq,
            "created_at": timezone.now(),
            "kind": "vote.cast",
            "actor": "alice",
            "subject": f"case:{seq}",
            "data": {"n": seq},
            "prev_hash": prev,
        }
        row["hash"] = sha256_of(row)
        AuditEntry.objects.create(**row, key_id="")
        prev = row["hash"]
        made.append(row)
    AuditHead.objects.update_or_create(id=1, defaults={"seq": n, "hash": prev, "key_id": ""})
    return made


def introduce_key() -> None:
    migration = importlib.import_module("audit.migrations.0002_keyed_chain")
    migration.introduce_key(apps, None)


def test_the_migration_seals_an_existing_chain_with_a_recorded_key_introduction(keyed):
    legacy = _legacy_chain(4)
    written_down = legacy[-1]["hash"]  # a head an operator recorded before keys
    assert not verify_chain().ok  # a chain that ends without a key is not accepted
    introduce_key()
    entry = AuditEntry.objects.get(seq=5)
    assert (entry.kind, entry.actor, entry.subject) == ("audit.key_introduced", "system", "audit_chain")
    assert entry.prev_hash == written_down and entry.key_id == key_id_of(KEY_A.encode())
    assert entry.data["sealed_seq"] == 4 and entry.data["sealed_hash"] == written_down
    assert entry.data["sealed_verified"] is True and entry.data["algorithm"] == "HMAC-SHA256"
    assert [r["hash"] for r in rows()[:4]] == [r["hash"] for r in legacy]  # not rewritten
    out = verify("--expect-head", written_down)  # heads written down before keys still verify
    assert "segment 0: entries #1–#4, plain SHA-256 (entries from before keys): verified" in out
    assert f"segment 1: entries #5, key {key_id_of(KEY_A.encode())} (AUDIT_CHAIN_KEY): verified" in out
    audit_append(kind="vote.cast", subject="case:6")
    assert AuditEntry.objects.filter(kind="audit.key_introduced").count() == 1
    introduce_key()  # running it again changes nothing
    assert AuditEntry.objects.count() == 6


def test_after_the_key_introduction_the_old_entries_cannot_be_recomputed(keyed):
    _legacy_chain(4)
    introduce_key()
    sql("UPDATE audit_auditentry SET actor = 'mallory' WHERE seq = 2")
    prev = None
    for row in rows()[:4]:  # recompute the SHA-256 part, as before keys anyone could
        if prev is not None:
            row["prev_hash"] = prev
        row["hash"] = sha256_of(row)
        sql(
            "UPDATE audit_auditentry SET prev_hash = %s, hash = %s WHERE seq = %s",
            [row["prev_hash"], row["hash"], row["seq"]],
        )
        prev = row["hash"]
    report = verify_chain()
    assert not report.ok and report.bad_seq == 5
    assert "entry #5 does not follow #4" in report.problem


def test_the_migration_records_when_the_old_entries_did_not_verify(keyed):
    _legacy_chain(3)
    sql("UPDATE audit_auditentry SET actor = 'mallory' WHERE seq = 2")
    introduce_key()
    entry = AuditEntry.objects.get(seq=4)
    assert entry.data["sealed_verified"] is False
    assert entry.data["sealed_problem"] == "entry #2 does not match its hash"
    assert verify_chain().bad_seq == 2  # sealing does not launder it


def test_an_empty_chain_needs_no_key_introduction(keyed):
    introduce_key()
    assert AuditEntry.objects.count() == 0
    first = audit_append(kind="vote.cast", subject="case:1")
    assert first.seq == 1 and first.prev_hash == GENESIS and first.key_id == key_id_of(KEY_A.encode())
    assert verify_chain().ok


# The head anchored outside the database.


def test_the_daily_job_anchors_the_head_in_the_file_and_mails_it(five, keyed, tmp_path, operator, mailoutbox):
    from audit.jobs import verify_audit_chain_job

    keyed.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-heads.log")
    operator.email = "olivia@example.com"
    operator.save()
    assert verify_audit_chain_job() is True
    line = (tmp_path / "audit-heads.log").read_text().splitlines()
    assert len(line) == 1 and line[0].split()[1:] == ["5", five[-1].hash, key_id_of(KEY_A.encode())]
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["olivia@example.com"]
    assert f"Head: #5 {five[-1].hash}" in mailoutbox[0].body
    assert f"--expect-head {five[-1].hash}" in mailoutbox[0].body
    audit_append(kind="vote.cast", subject="case:6")
    assert verify_audit_chain_job() is True
    assert len((tmp_path / "audit-heads.log").read_text().splitlines()) == 2  # appended, not rewritten
    assert "2 heads anchored in AUDIT_ANCHOR_FILE are on the chain." in verify()


def test_deleting_the_newest_entries_and_fixing_the_head_is_caught_by_the_anchor_file(five, keyed, tmp_path):
    from audit.jobs import verify_audit_chain_job

    keyed.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-heads.log")
    assert verify_audit_chain_job() is True
    sql("DELETE FROM audit_auditentry WHERE seq >= 4")
    sql("UPDATE audit_audithead SET seq = 3, hash = %s", [five[2].hash])
    keyed.AUDIT_ANCHOR_FILE = ""
    assert verify_chain().ok  # consistent: only a record outside the database can tell
    keyed.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-heads.log")
    report = verify_chain()
    assert not report.ok and "(#5 " in report.problem and "past the end of the chain (#3)" in report.problem


def test_a_malformed_anchor_file_fails_verification_naming_the_line(five, keyed, tmp_path):
    path = tmp_path / "audit-heads.log"
    path.write_text("2026-11-30T00:00:00Z 5 nothex -\n")
    keyed.AUDIT_ANCHOR_FILE = str(path)
    report = verify_chain()
    assert not report.ok and f"{path} line 1 is not" in report.problem


def test_a_chain_rebuilt_after_an_anchor_is_caught_at_the_anchored_entry(five, keyed, tmp_path):
    """Whoever holds the key can rebuild a chain that verifies; a head anchored outside
    the database before that still names the entry that changed."""
    path = tmp_path / "audit-heads.log"
    path.write_text(f"2026-11-30T00:00:00Z 3 {'a' * 64} {key_id_of(KEY_A.encode())}\n")
    keyed.AUDIT_ANCHOR_FILE = str(path)
    report = verify_chain()
    assert not report.ok and report.bad_seq == 3
    assert report.problem.startswith("entry #3 is not the one anchored at 2026-11-30")
    assert "the chain was rewritten from there on" in report.problem
    path.write_text(f"2026-11-30T00:00:00Z 3 {five[2].hash} {key_id_of(KEY_A.encode())}\n")
    assert verify_chain().ok and verify_chain().anchors == 1


def test_a_head_row_whose_hash_is_not_the_last_entrys_is_reported(five):
    sql("UPDATE audit_audithead SET hash = %s", ["f" * 64])
    report = verify_chain()
    assert not report.ok and report.bad_seq == 6
    assert "the chain ends at #5 but its head says #5" in report.problem
