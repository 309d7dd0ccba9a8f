"""RQ jobs for deployments. Each takes plain values, reloads rows, and is safe to run twice."""

from __future__ import annotations

import django_rq

from deployments import services


def enqueue(func, *args):
    return django_rq.get_queue("default").enqueue(func, *args)


def redecide_unregistered(ai_model: str) -> int:
    """After a version is registered: tasks held because it was not, decided again."""
    return services.redecide_unregistered(ai_model=ai_model)


def redecide_all_unregistered() -> int:
    """Periodic safety net: the same for every version registered since its tasks were held."""
    return services.redecide_all_unregistered()
