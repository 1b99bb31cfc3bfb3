"""Alert rules: what each kind checks, and how alerts move between states.

- model: rules, readings, evidence, durations (the shared vocabulary).
- kinds: the rule kinds by name; one module each (threshold, slo, probes, error_groups,
  security, experiments, workbench), reading the metric catalogue through windows.
- states: inactive -> pending -> firing -> resolved, per rule and label set.
- matchers: label matchers for silences and inhibition.
- defaults: the rule set a voice agent starts with.
"""
