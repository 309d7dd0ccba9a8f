"""Helpers for the reviews tests of issue 17 (first views, honeypots, the chair, the alert condition)."""

from __future__ import annotations

import sys
import types

from fsar.testing import report_md

WHY = "I read the report and the rollback plan."


def held_report(post_report, report_id: str = "r1", *, severity: int = 35, proposal: str = "") -> int:
    """A report the default policy holds for the committee (severity 30–49: quorum 2); its case id."""
    text = report_md(report_id, severity=severity, **({"proposal": proposal} if proposal else {}))
    response = post_report(text)
    assert response.status_code == 201, response.content
    return response.json()["gate"]["case"]


def alerts_firing_for(monkeypatch, *models: str) -> list[str]:
    """Stand in for indicators.selectors.model_alert_firing (built by another helper):
    an alert fires for exactly `models`. Returns the names the gate asked about."""
    import indicators

    asked: list[str] = []

    def model_alert_firing(ai_model: str) -> bool:
        asked.append(ai_model)
        return ai_model in models

    fake = types.ModuleType("indicators.selectors")
    fake.model_alert_firing = model_alert_firing
    monkeypatch.setitem(sys.modules, "indicators.selectors", fake)
    monkeypatch.setattr(indicators, "selectors", fake, raising=False)
    return asked
