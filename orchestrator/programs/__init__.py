"""Users' own programs as a host's app: their syscall traces (strace) turned into the events the
verdict reads, and Compose projects read with the real Compose implementation."""
