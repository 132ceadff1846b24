"""The agent: the built-in program a host can run, and the config it takes from a scenario."""
