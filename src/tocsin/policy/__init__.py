"""The incident response policy: the seed runbook as data, or a team's own tocsin.yaml."""

from tocsin.policy.loader import PolicyError, PolicyIssue, default_policy, load_policy, load_policy_text
from tocsin.policy.models import Deadline, NextBusinessDay, Policy, SeverityPolicy, UnknownSeverity

__all__ = [
    "Deadline",
    "NextBusinessDay",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "SeverityPolicy",
    "UnknownSeverity",
    "default_policy",
    "load_policy",
    "load_policy_text",
]
