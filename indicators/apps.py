from django.apps import AppConfig


class IndicatorsConfig(AppConfig):
    """Leading indicators (issue 17): series from the rollups and the reviews
    tables, damped change detection, alerts and their lifecycle, the
    reviewer-behaviour watch and honeypots (docs/indicators.md)."""

    name = "indicators"
    verbose_name = "Leading indicators"

    def ready(self) -> None:
        from indicators import receivers
        from reviews import signals

        vote_recorded = getattr(signals, "vote_recorded", None)  # reviews' side of issue 17
        if vote_recorded is not None:
            vote_recorded.connect(receivers.honeypot_vote, dispatch_uid="indicators.honeypot_vote")
