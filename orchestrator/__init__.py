"""tcpscen: reproduce TCP disconnection behaviour between real kernels and judge it from the packets."""

__version__ = "0.1.0"
