"""AML behaviour monitoring: the reference Activity, the rules, their scenarios, the [aml] table."""
