"""The scenario model and its loader: pure, no Docker."""
