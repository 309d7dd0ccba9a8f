"""The audit chain catches edits, insertions and deletions made with raw SQL."""

import hashlib
import hmac
import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone

from audit.chain import GENESIS, audit_append, canonical, current_head, verify_chain
from audit.keys import current_key
from audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_entries():
    return [
        audit_append(kind="vote.cast", subject=f"case:{i}", actor="alice", data={"choice": "approve", "n": i})
        for i in range(1, 6)
    ]


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit_chain", *args, stdout=out)
    return out.getvalue()


def test_entries_link_to_the_previous_hash_and_the_head_follows(five_entries):
    assert five_entries[0].prev_hash == GENESIS
    for before, after in zip(five_entries, five_entries[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.seq == before.seq + 1
    head = current_head()
    assert (head.seq, head.hash) == (5, five_entries[-1].hash)


def test_the_hash_is_hmac_sha256_under_the_chain_key_over_the_canonical_content(five_entries, settings):
    entry = AuditEntry.objects.get(seq=3)
    body = canonical(
        seq=3,
        created_at=entry.created_at,
        kind="vote.cast",
        actor="alice",
        subject="case:3",
        data={"choice": "approve", "n": 3},
        prev_hash=five_entries[1].hash,
    )
    assert entry.hash == hmac.new(settings.AUDIT_CHAIN_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert entry.hash != hashlib.sha256(body).hexdigest()
    assert entry.key_id == current_key().key_id and len(entry.key_id) == 16
    assert settings.AUDIT_CHAIN_KEY[:16] not in entry.key_id  # the id names the key without revealing it


def test_an_intact_chain_verifies_and_prints_its_head(five_entries):
    out = verify()
    assert "Audit chain OK: 5 entries." in out
    assert f"head {five_entries[-1].hash}" in out
    assert verify("--expect-head", five_entries[2].hash)  # later entries appended since are fine


def test_an_edited_entry_is_reported_by_number(five_entries):
    data = json.dumps({"choice": "reject", "n": 3})
    sql("UPDATE audit_auditentry SET data = %s WHERE seq = 3", [data])
    report = verify_chain()
    assert not report.ok and report.bad_seq == 3
    with pytest.raises(CommandError, match="entry #3 was edited"):
        verify()


def test_an_edited_actor_is_caught_too(five_entries):
    sql("UPDATE audit_auditentry SET actor = 'mallory' WHERE seq = 2")
    assert verify_chain().bad_seq == 2


def test_a_deleted_middle_entry_is_reported(five_entries):
    sql("DELETE FROM audit_auditentry WHERE seq = 2")
    with pytest.raises(CommandError, match="entry #2 is missing"):
        verify()


def test_an_entry_inserted_in_the_middle_is_reported_where_the_links_break(five_entries):
    # Make room at #3 and insert a well-formed forgery that links to #2 (made by
    # someone who holds the key too: test_keyed_chain.py has those who do not).
    for seq in (5, 4, 3):
        sql("UPDATE audit_auditentry SET seq = %s WHERE seq = %s", [seq + 1, seq])
    forged = AuditEntry(
        seq=3,
        created_at=five_entries[2].created_at,
        kind="vote.cast",
        actor="mallory",
        subject="case:99",
        data={},
        prev_hash=five_entries[1].hash,
        key_id=current_key().key_id,
    )
    from audit.chain import entry_hash

    forged_hash = entry_hash(forged)
    sql(
        "INSERT INTO audit_auditentry (seq, created_at, kind, actor, subject, data, prev_hash, hash, key_id) "
        "VALUES (3, %s, 'vote.cast', 'mallory', 'case:99', '{}', %s, %s, %s)",
        [five_entries[2].created_at, five_entries[1].hash, forged_hash, forged.key_id],
    )
    report = verify_chain()
    assert not report.ok
    assert report.bad_seq == 4  # the renumbered old #3 no longer matches its hash
    with pytest.raises(CommandError, match="#4"):
        verify()


def test_deleting_the_newest_entries_is_caught_by_the_head_row(five_entries):
    sql("DELETE FROM audit_auditentry WHERE seq >= 4")
    with pytest.raises(CommandError, match="entries after #3 were deleted"):
        verify()


def test_deleting_the_newest_entries_and_fixing_the_head_is_caught_with_expect_head(five_entries):
    sql("DELETE FROM audit_auditentry WHERE seq >= 4")
    sql("UPDATE audit_audithead SET seq = 3, hash = %s", [five_entries[2].hash])
    assert "Audit chain OK: 3 entries." in verify()  # consistent, so only the written-down head can tell
    with pytest.raises(CommandError, match="expected head .* is not on the chain"):
        verify("--expect-head", five_entries[-1].hash)


def test_creating_and_revoking_an_api_key_is_on_the_chain(make_api_key, operator):
    from tasks.services import api_key_revoke

    api_key, _ = make_api_key(scopes=["read"])
    api_key_revoke(api_key_id=api_key.pk, by=operator, reason="leaked in a log")
    entries = list(AuditEntry.objects.filter(subject=f"api_key:{api_key.pk}").order_by("seq"))
    assert [e.kind for e in entries] == ["api_key.created", "api_key.revoked"]
    assert entries[0].data["scopes"] == ["read"]
    assert entries[1].actor == "olivia" and entries[1].data["reason"] == "leaked in a log"
    assert verify_chain().ok


def test_the_operator_page_shows_the_head_hash(client, operator, five_entries):
    client.force_login(operator)
    response = client.get("/audit/")
    assert response.status_code == 200
    assert five_entries[-1].hash.encode() in response.content


@pytest.mark.postgres(reason="row locks serialising concurrent appends")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_appends_form_one_unbroken_chain():
    audit_append(kind="seed", subject="x")
    barrier = threading.Barrier(4)
    errors = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(10):
                audit_append(kind="vote.cast", subject=f"case:{n}-{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    report = verify_chain()
    assert report.ok and report.entries == 41


def test_the_daily_job_mails_operators_when_the_chain_breaks(five_entries, operator, mailoutbox):
    from audit.jobs import verify_audit_chain_job

    operator.email = "olivia@example.com"
    operator.save()
    assert verify_audit_chain_job() is True
    assert [m.subject for m in mailoutbox] == [f"[FSAR] Audit chain head #5 for {timezone.now():%Y-%m-%d}"]
    sql("DELETE FROM audit_auditentry WHERE seq = 2")
    assert verify_audit_chain_job() is False
    assert len(mailoutbox) == 2
    assert mailoutbox[1].to == ["olivia@example.com"]
    assert mailoutbox[1].subject == "[FSAR] The audit chain failed verification"
    assert "entry #2 is missing" in mailoutbox[1].body
