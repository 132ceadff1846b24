"""Capture files: pcap and pcapng, read and written; links and headers decoded to TCP segments."""
