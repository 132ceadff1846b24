"""The run: the loop that drives a scenario, its schedule, what it records and its journal."""
