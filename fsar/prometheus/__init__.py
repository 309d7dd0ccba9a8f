"""`/metrics`: FSAR's state in the Prometheus text format, for an operator's own
Prometheus, Grafana and Alertmanager (docs/deployment.md, "Prometheus metrics").

- `readings.py`: the reads, one query per family, each on an index (pinned by
  fsar/tests/test_prometheus.py: at most 10 queries per scrape, no sequential scan
  of execution_tasks at 1M tasks on PostgreSQL);
- `collector.py`: a prometheus_client collector built for each scrape from those
  reads, so every gunicorn worker answers from the database and none keeps
  counters of its own that would drift apart;
- `views.py`: the endpoint, behind the METRICS_TOKEN bearer token.

`fsar` composes every app and no app imports it, so this is the one place that may
read all of them.
"""
