"""The committee chair: one member set in the review settings (admin, history,
audit chain), or every operator when unset (reviews.selectors.committee_chairs)."""

import pytest

from audit.models import AuditEntry
from core.roles import OPERATORS
from fsar.testing import make_user
from reviews import selectors, services
from reviews.models import ReviewSettings

pytestmark = pytest.mark.django_db
REASON = "Alice chairs the committee from this quarter."


def test_without_a_chair_every_active_operator_is_told(django_user_model, operator, alice, superuser):
    make_user(django_user_model, "oscar", OPERATORS, is_active=False)
    assert set(selectors.committee_chairs()) == {operator, superuser}  # superusers hold every role


def test_the_chair_alone_once_set_with_history_and_a_chain_entry(operator, alice, bob):
    services.review_settings_set(by=operator, chair=alice, reason=REASON)
    assert selectors.committee_chairs() == [alice]
    row = ReviewSettings.objects.get(pk=1)
    assert row.history.latest().history_change_reason == f"chair alice: {REASON}"
    entry = AuditEntry.objects.filter(kind="review_settings.changed").latest("seq")
    assert entry.data["diff"] == {"chair": [None, "alice"]} and entry.actor == "olivia"
    services.review_settings_set(by=operator, chair=None, reason="Alice stepped down.")
    assert selectors.committee_chairs() == [operator]


def test_an_inactive_chair_leaves_it_to_the_operators(operator, alice):
    services.review_settings_set(by=operator, chair=alice, reason=REASON)
    alice.is_active = False
    alice.save()
    assert selectors.committee_chairs() == [operator]


def test_only_a_committee_member_may_chair(operator, customer_user):
    with pytest.raises(services.NotAllowed, match="not an active committee member"):
        services.review_settings_set(by=operator, chair=customer_user, reason=REASON)
    with pytest.raises(services.NotAllowed, match="nothing changed"):
        services.review_settings_set(by=operator, chair=None, reason=REASON)
    assert ReviewSettings.objects.get(pk=1).chair is None


def test_an_operator_sets_the_chair_in_the_admin(client, operator, alice, bob):
    client.force_login(operator)
    url = "/admin/reviews/reviewsettings/1/change/"
    choices = client.get(url).context["adminform"].form.fields["chair"].queryset
    assert set(choices) == {alice, bob}  # committee members only: not the operator
    response = client.post(url, {"chair": alice.pk, "change_reason": REASON})
    assert response.status_code == 302
    assert ReviewSettings.objects.get(pk=1).chair == alice
    assert selectors.committee_chairs() == [alice]
    history = client.get("/admin/reviews/reviewsettings/1/history/").content.decode()
    assert REASON in history
