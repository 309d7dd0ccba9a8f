"""`--dist loadgroup` on pytest 9.2 (a pytest plugin, loaded by the root conftest.py).

pytest-xdist's loadgroup scheduler sends the tests of one `xdist_group` to one
worker; it learns a test's group from the node id, which each worker suffixes
with `@<group>` at collection. pytest-xdist 3.8.0 writes that suffix to
`item._nodeid`, which pytest 9.2 no longer reads (node ids are structured,
`item._id`): the suffix is lost and grouped tests are spread over the workers as
if unmarked, silently (pytest-dev/pytest-xdist#1386). This hook adds the suffix
the way pytest-xdist means to, after pytest-xdist's own, only in a worker of a
loadgroup run, and only where it is missing (an older pytest, or a fixed
pytest-xdist, leaves nothing to do).

And loadgroup keeps the collection's order: by default pytest-xdist sends the
largest group first, which would run the fault tests (transactional: their
teardown empties the tables, and serialized_rollback keeps Django from putting
the content types back) before the tests pytest-django orders ahead of them, on a
database those then find empty. fsar/tests/test_xdist_groups.py checks both.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", None) == "loadgroup":
        config.option.loadscopereorder = False  # as --no-loadscope-reorder


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
