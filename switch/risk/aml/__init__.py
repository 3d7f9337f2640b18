"""AML behaviour monitoring: rules over each payment's Activity that raise alerts for
compliance to review (they never decline), and, for development only, seeded scenarios
of the behaviours they look for (scenarios.py)."""

from switch.risk.aml.rules import ALERTS, RULES, AmlPolicy, AmlRules

__all__ = ["ALERTS", "RULES", "AmlPolicy", "AmlRules"]
