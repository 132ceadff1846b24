"""The lab: the only code that imports docker."""
