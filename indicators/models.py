"""Indicator series, detectors' state and alerts (docs/indicators.md)."""
