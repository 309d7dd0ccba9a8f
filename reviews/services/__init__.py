"""Reviews' services, being split by concern (issue #13); re-exported for now."""

from reviews.services.cases import *  # noqa: F403
