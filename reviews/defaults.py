"""The default policy, installed by a data migration (and by `install_default_rules`
for databases emptied since, such as transactional tests)."""

DEFAULT_RULES = [
    {
        "name": "severity-50-hold",
        "priority": 10,
        "description": "Severity 50 or more (the AI side's 'block'): hold for three approvals.",
        "severity_min": 50,
        "action": "hold",
        "quorum": 3,
    },
    {
        "name": "block-execution-hold",
        "priority": 20,
        "description": "The report asks to block execution: hold for two approvals.",
        "block_execution": True,
        "action": "hold",
        "quorum": 2,
    },
    {
        "name": "severity-30-hold",
        "priority": 30,
        "description": "Severity 30 or more (the AI side's 'needs review'): hold for two approvals.",
        "severity_min": 30,
        "action": "hold",
        "quorum": 2,
    },
    {
        "name": "default-allow",
        "priority": 1000,
        "description": "Everything else runs; reports of severity 10 or more open an advisory case.",
        "action": "allow",
        "advisory_min_severity": 10,
    },
]


def install_default_rules(rule_model=None) -> int:
    """Create the default rules that are missing (by name); returns how many it created."""
    if rule_model is None:
        from reviews.models import PolicyRule as rule_model
    created = 0
    for spec in DEFAULT_RULES:
        _, was_created = rule_model.objects.get_or_create(name=spec["name"], defaults=spec)
        created += was_created
    return created
