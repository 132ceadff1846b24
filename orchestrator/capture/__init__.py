"""Capture: what runs in each host's namespace to record its side's packets."""
