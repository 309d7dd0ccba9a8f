"""Writes of the indicators app: points (points.py), alerts and their lifecycle
(alerts.py), the detectors' runs (detect.py). Import the module you need."""
