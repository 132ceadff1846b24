"""Report: the run directory's files, and what the terminal shows."""
