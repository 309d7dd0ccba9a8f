"""The OpenAPI schema says the same thing wherever the same thing is answered."""

import pytest

from fsar.api import api


@pytest.fixture(scope="module")
def schema() -> dict:
    return api.get_openapi_schema(path_prefix="/api/v1/")


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def without_words(node: dict) -> dict:
    """A property's schema without what only documents it."""
    return {k: v for k, v in node.items() if k not in ("title", "description")}


def base_types(node: dict) -> set[str]:
    options = node.get("anyOf", [node])
    return {o.get("type") for o in options} - {"null"}


def gate_objects(schema: dict) -> dict[str, dict]:
    gates = {}
    for name, component in schema["components"]["schemas"].items():
        if "gate" in component.get("properties", {}):
            gates[name] = resolve(schema, component["properties"]["gate"])
    return gates


def test_every_gate_object_names_its_case_as_an_integer(schema):
    gates = gate_objects(schema)
    assert {"TaskOut", "ProposalOut"} <= set(gates)  # the tasks' and the reports' at least
    for owner, gate in gates.items():
        case = gate["properties"]["case"]
        assert without_words(case) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}, owner


def test_gate_fields_shared_by_several_answers_have_one_type(schema):
    gates = gate_objects(schema)
    by_field: dict[str, dict[str, set[str]]] = {}
    for owner, gate in gates.items():
        for field, node in gate["properties"].items():
            by_field.setdefault(field, {})[owner] = base_types(node)
    for field, types in by_field.items():
        assert len({frozenset(t) for t in types.values()}) == 1, f"gate.{field} differs: {types}"
