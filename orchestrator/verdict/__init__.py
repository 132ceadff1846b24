"""The verdict: what was expected, against what the packets, the kernels and the apps showed."""
