"""The errors reviews' services raise. A ReviewError carries a message a person can
act on (and, where one field is at fault, that field): the API answers it with
409 (fsar/api.py), the pages as a form error. UnknownProposal is the gate's:
fsar.gate turns it into a 422 naming `proposal_id`.
"""

from __future__ import annotations

from core.errors import Refused


class ReviewError(Refused):
    """A request the review rules refuse (core.errors.Refused: message, status, extra)."""


class ReportConflict(ReviewError):
    status_code = 409


class NotAllowed(ReviewError):
    status_code = 409


class UnknownProposal(Exception):
    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"proposal_id: no report with id {proposal_id!r}")
        self.proposal_id = proposal_id
