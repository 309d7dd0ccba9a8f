"""`verify_callback` against FSAR's own signing (reviews.jobs.sign) and a real
delivery from the server's callback job to a receiver on this machine."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fsar_client import InvalidSignature, verify_callback

SECRET = "whsec-test-0123456789"
BODY = b'{"event_id":"e1","type":"released","task":{"id":1}}'


def signed(body: bytes = BODY, *, secret: str = SECRET, at: int | None = None) -> dict:
    from reviews.jobs import SIGNATURE_HEADER, sign

    return {SIGNATURE_HEADER: sign(secret, body, int(time.time()) if at is None else at)}


def test_a_body_signed_by_fsar_verifies_and_gives_its_json():
    assert verify_callback(BODY, signed(), SECRET) == {"event_id": "e1", "type": "released", "task": {"id": 1}}


def test_header_names_are_found_in_any_case_and_in_a_wsgi_environ():
    header = signed()["FSAR-Signature"]
    assert verify_callback(BODY.decode(), {"fsar-signature": header}, SECRET)["type"] == "released"
    assert verify_callback(BODY, {"HTTP_FSAR_SIGNATURE": header}, SECRET)["type"] == "released"


@pytest.mark.parametrize(
    ("body", "headers", "secret", "message"),
    [
        (BODY.replace(b"released", b"denied"), signed(), SECRET, "does not match"),
        (BODY, signed(secret="another"), SECRET, "does not match"),
        (BODY, {}, SECRET, "no FSAR-Signature"),
        (BODY, {"FSAR-Signature": "t=1"}, SECRET, "needs t="),
        (BODY, {"FSAR-Signature": "t=abc,v1=00"}, SECRET, "not a number"),
        (BODY, signed(at=int(time.time()) - 301), SECRET, "old"),
        (json.dumps(json.loads(BODY)).encode(), signed(), SECRET, "does not match"),  # re-serialised
    ],
    ids=["altered-body", "wrong-secret", "no-header", "no-signature", "bad-timestamp", "replayed", "re-serialised"],
)
def test_anything_but_fsars_fresh_signature_of_these_exact_bytes_is_refused(body, headers, secret, message):
    with pytest.raises(InvalidSignature, match=message):
        verify_callback(body, headers, secret)


def test_the_tolerance_can_be_widened_for_a_replay_window_of_your_choice():
    old = signed(at=int(time.time()) - 600)
    assert verify_callback(BODY, old, SECRET, tolerance=900)["event_id"] == "e1"


class Receiver:
    """An HTTP server on 127.0.0.1 that records the callbacks POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fsar-callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_callback_from_fsar_verifies(fsar, agent_key, operator, alice, bob, settings):
    from reviews import services

    from .conftest import report_md

    receiver = Receiver()
    # The receiver is on this machine: allowed as an on-premise agent's network (deliveries run inline here).
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    try:
        services.callback_endpoint_set(api_key_id=agent_key[0].pk, url=receiver.url, secret=SECRET, by=operator)
        report = fsar.submit_report(report_md("r-callback", severity=30))
        task = fsar.register("implement_idea", external_id="cb-1", proposal_id="r-callback")
        assert task.held
        for member in (alice, bob):  # jobs run inline in tests: the delivery goes out at the decision
            services.vote_cast(
                case_id=report.case, member=member, choice="approve", rationale="Checked the plan; fine by me."
            )
        (body, headers), *_ = receiver.received
        payload = verify_callback(body, headers, SECRET)
        assert payload["type"] == "released" and payload["task"]["id"] == task.task_id
        assert payload["case"]["id"] == report.case and headers["FSAR-Event-Id"] == payload["event_id"]
        with pytest.raises(InvalidSignature):
            verify_callback(body, headers, "not-the-secret")
    finally:
        receiver.close()
