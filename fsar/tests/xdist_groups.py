"""`--dist loadgroup` on pytest 9.2 (a pytest plugin, loaded by the root conftest.py).

pytest-xdist's loadgroup scheduler sends the tests of one `xdist_group` to one
worker; it learns a test's group from the node id, which each worker suffixes
with `@<group>` at collection. pytest-xdist 3.8.0 writes that suffix to
`item._nodeid`, which pytest 9.2 no longer reads (node ids are structured,
`item._id`): the suffix is lost and grouped tests are spread over the workers as
if unmarked, silently (pytest-dev/pytest-xdist#1386). This hook adds the suffix
the way pytest-xdist means to, after pytest-xdist's own, only in a worker of a
loadgroup run, and only where it is missing (an older pytest, or a fixed
pytest-xdist, leaves nothing to do). fsar/tests/test_xdist_groups.py runs a
grouped pair of modules under `-n 2 --dist loadgroup` and checks one worker ran both.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        groups = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
        }
        if not groups:
            continue
        suffix = "@" + "_".join(sorted(groups))
        if item.nodeid.endswith(suffix) or not isinstance(getattr(item, "_id", None), NodeId):
            continue
        grouped = NodeId.parse(item.nodeid + suffix)
        if str(grouped) == item.nodeid + suffix:  # the scheduler reads the string back
            item._id = grouped
