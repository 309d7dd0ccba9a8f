# The reviews tests' fixtures (default policy, a fresh rule cache, posting a report)
# for the cross-app tests here, the adversary suite first.
from reviews.tests.conftest import default_policy, fresh_rule_cache, post_report  # noqa: F401
