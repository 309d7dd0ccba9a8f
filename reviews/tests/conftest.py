from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    """Each test sees the rules in its own database, never a previous test's cache."""
    from reviews import policy

    policy.clear_cache()
    yield
    policy.clear_cache()


@pytest.fixture(autouse=True)
def default_policy(request):
    """Database tests start from the default policy, even after a transactional
    test elsewhere in the run flushed what the data migration installed."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    from reviews import policy
    from reviews.defaults import install_default_rules

    install_default_rules()
    policy.clear_cache()


@pytest.fixture
def seed_md() -> bytes:
    return (FIXTURES / "seed_report.md").read_bytes()


def report_md(
    report_id: str,
    *,
    severity: int = 6,
    block: bool = False,
    proposal: str = "implement_idea: add a cache",
    supersedes: str | None = None,
) -> str:
    lines = [
        "# FSAR Proposal Report",
        f"- id: {report_id}",
        "- timestamp: 2026-02-01T10:00:00Z",
        f"- severity: {severity}",
        f"- block_execution: {'true' if block else 'false'}",
    ]
    if supersedes:
        lines.append(f"- supersedes: {supersedes}")
    lines += ["- proposal:", "", proposal, "", "## Risks", "- it might break", "", "## Mitigations", "- test it", ""]
    return "\n".join(lines)


@pytest.fixture
def post_report(agent):
    def post(text: str, content_type: str = "text/markdown"):
        return agent.post("/api/v1/proposals", data=text.encode(), content_type=content_type)

    return post


# The callbacks' receivers in tests are named *.example and resolve (here, without DNS) to
# TEST-NET-1, a documentation network nothing routes to, allowed as an on-premise agent's
# would be; tests of the address rules set their own networks and names.
TEST_RECEIVERS = "192.0.2.0/24"


@pytest.fixture(autouse=True)
def callback_receivers_resolve(settings, monkeypatch):
    import ipaddress

    from reviews import callback_urls

    real = callback_urls.resolve

    def resolve(host: str, port: int):
        if host.endswith(".example"):
            return [ipaddress.ip_address("192.0.2.10")]
        return real(host, port)

    monkeypatch.setattr(callback_urls, "resolve", resolve)
    settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = [TEST_RECEIVERS]
