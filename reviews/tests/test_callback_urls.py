"""Callback URLs go only to public addresses (unless an operator allows a
network for an on-premise agent), checked when set and again at every delivery
on the very addresses connected to; no redirects, no proxies, and of the
receiver's answer only the status and a short escaped excerpt are kept.

The AI side runs the receiver and its DNS: it can make a name resolve to a
public address when the URL is set and to 127.0.0.1 or the metadata service
when the callback is sent. Every receiver here listens on 127.0.0.1."""

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from fsar.testing import report_md
from reviews import callback_urls, jobs, services
from reviews.models import CallbackDelivery, CallbackEndpoint

pytestmark = pytest.mark.django_db
PUBLIC = ipaddress.ip_address("93.184.215.14")  # resolved to only: nothing here ever connects to it


class Receiver:
    """An HTTP server on 127.0.0.1 recording what reaches it."""

    def __init__(self, status: int = 204, body: bytes = b"", headers: dict | None = None) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def dns(monkeypatch):
    """The AI side's DNS: what agent.example resolves to, changeable between set and delivery."""
    answers = {"agent.example": [PUBLIC]}
    system = callback_urls.resolve

    def resolve(host: str, port: int):
        return answers[host] if host in answers else system(host, port)

    monkeypatch.setattr(callback_urls, "resolve", resolve)
    return answers


@pytest.fixture
def no_private_networks(settings):
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = []
    return settings


def held_delivery(agent, post_report, alice, api_key, operator, url, django_capture_on_commit_callbacks):
    """A callback endpoint at `url` and one delivery due to it (a held task released)."""
    key, _ = api_key
    services.callback_endpoint_set(api_key_id=key.pk, url=url, secret="s3cret", by=operator)
    case_id = post_report(report_md("r1", severity=50)).json()["gate"]["case"]
    agent.post("/api/v1/tasks", {"external_id": "t1", "task_type": "implement_idea", "proposal_id": "r1"},
               content_type="application/json")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):  # recorded, not sent yet
        services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Fine.")
    return CallbackDelivery.objects.get()


INTERNAL = [
    "http://127.0.0.1:6379/",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0:8000/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "http://127.1/hook",
    "http://224.0.0.1/hook",
]


@pytest.mark.adversary
@pytest.mark.parametrize("url", INTERNAL)
def test_a_callback_url_to_an_internal_address_is_refused_when_set(api_key, operator, no_private_networks, dns, url):
    key, _ = api_key
    services.callback_endpoint_set(api_key_id=key.pk, url="https://agent.example/cb", secret="s", by=operator)  # door
    with pytest.raises(services.NotAllowed) as refused:
        services.callback_endpoint_set(api_key_id=key.pk, url=url, secret="s", by=operator)
    assert refused.value.message.startswith("url: ") and "REVIEWS_CALLBACK_ALLOWED_NETWORKS" in refused.value.message
    assert refused.value.extra == {"field": "url"}
    assert key.callback.url == "https://agent.example/cb"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://agent.example/cb", "must start with https://"),
        ("https://user:pw@agent.example/cb", "user name or password"),
        ("https://nowhere.invalid/cb", "does not resolve"),
        ("https://agent.example:99999/cb", "not a URL"),
    ],
)
def test_a_callback_url_that_is_not_a_plain_public_http_url_is_refused(api_key, operator, dns, url, why):
    key, _ = api_key
    with pytest.raises(services.NotAllowed, match=why):
        services.callback_endpoint_set(api_key_id=key.pk, url=url, secret="s", by=operator)


@pytest.mark.adversary
def test_a_name_that_resolves_to_the_metadata_service_is_refused_naming_the_address(
    api_key, operator, no_private_networks, dns
):
    dns["agent.example"] = [PUBLIC, ipaddress.ip_address("169.254.169.254")]  # one public, one not: refused
    key, _ = api_key
    with pytest.raises(services.NotAllowed, match="agent.example resolves to 169.254.169.254, a link-local address"):
        services.callback_endpoint_set(api_key_id=key.pk, url="https://agent.example/cb", secret="s", by=operator)


def test_an_operator_may_allow_an_on_premise_network(api_key, operator, settings):
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    key, _ = api_key
    endpoint = services.callback_endpoint_set(api_key_id=key.pk, url="http://10.20.1.5/cb", secret="s", by=operator)
    assert endpoint.url == "http://10.20.1.5/cb"
    with pytest.raises(services.NotAllowed, match="10.21.0.1 is a private address"):
        services.callback_endpoint_set(api_key_id=key.pk, url="http://10.21.0.1/cb", secret="s", by=operator)


def test_the_admin_refuses_an_internal_callback_url_too(client, superuser, api_key, no_private_networks):
    key, _ = api_key
    client.force_login(superuser)
    response = client.post(
        reverse("admin:reviews_callbackendpoint_add"),
        {"api_key": key.pk, "url": "http://169.254.169.254/latest/", "secret": "s", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "169.254.169.254 is a link-local address" in response.content.decode()
    assert not CallbackEndpoint.objects.exists()


@pytest.mark.adversary
def test_a_name_that_resolves_to_the_loopback_at_delivery_time_is_not_called(
    agent, post_report, alice, api_key, operator, settings, dns, receivers, django_capture_on_commit_callbacks
):
    inside = receivers()
    url = f"http://agent.example:{inside.port}/cb"
    delivery = held_delivery(agent, post_report, alice, api_key, operator, url, django_capture_on_commit_callbacks)
    dns["agent.example"] = [ipaddress.ip_address("127.0.0.1")]  # the AI side changes its DNS after the check

    # The door: were the loopback allowed, the delivery would reach what listens there.
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert jobs.deliver_callback(delivery.pk) == "delivered" and inside.requests == ["/cb"]
    CallbackDelivery.objects.filter(pk=delivery.pk).update(status="pending", attempts=0)

    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = []
    assert jobs.deliver_callback(delivery.pk) == "pending"
    assert inside.requests == ["/cb"]  # nothing new reached it
    delivery.refresh_from_db()
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("refused: agent.example resolves to 127.0.0.1, a loopback address")


@pytest.mark.adversary
def test_a_redirect_from_the_receiver_is_not_followed(
    agent, post_report, alice, api_key, operator, settings, receivers, django_capture_on_commit_callbacks
):
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the receiver's own network, allowed
    target = receivers()
    bouncer = receivers(status=307, headers={"Location": f"http://127.0.0.1:{target.port}/internal-admin"})
    url = f"http://127.0.0.1:{bouncer.port}/cb"
    delivery = held_delivery(agent, post_report, alice, api_key, operator, url, django_capture_on_commit_callbacks)
    assert jobs.deliver_callback(delivery.pk) == "pending"
    assert bouncer.requests == ["/cb"] and target.requests == []
    delivery.refresh_from_db()
    assert (delivery.last_status_code, delivery.last_error) == (307, "HTTP 307: redirects are not followed")


@pytest.mark.adversary
def test_only_the_status_and_a_short_escaped_excerpt_of_a_failure_are_kept(
    agent, post_report, alice, api_key, operator, settings, receivers, django_capture_on_commit_callbacks
):
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    body = ("<script>alert(1)</script>\x1b[31m\r\nSet-Cookie: x=1 é" + "A" * 500_000).encode()
    receiver = receivers(status=500, body=body)
    url = f"http://127.0.0.1:{receiver.port}/cb"
    delivery = held_delivery(agent, post_report, alice, api_key, operator, url, django_capture_on_commit_callbacks)
    jobs.deliver_callback(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_status_code == 500
    error = delivery.last_error
    assert error.startswith("HTTP 500: <script>alert(1)</script>\\x1b[31m\\r\\nSet-Cookie: x=1 \\xe9AAA")
    assert error.isascii() and error.isprintable() and len(error) < 300


@pytest.mark.adversary
def test_proxies_from_the_environment_are_not_used(
    agent, post_report, alice, api_key, operator, settings, dns, receivers, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """A proxy would resolve the name itself, out of the check's reach."""
    proxy = receivers()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    receiver = receivers()
    dns["agent.example"] = [ipaddress.ip_address("127.0.0.1")]
    url = f"http://agent.example:{receiver.port}/cb"
    delivery = held_delivery(agent, post_report, alice, api_key, operator, url, django_capture_on_commit_callbacks)
    assert jobs.deliver_callback(delivery.pk) == "delivered"
    assert receiver.requests == ["/cb"] and proxy.requests == []
