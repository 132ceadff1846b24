"""TCP analysis: every connection of a capture, in agreement with Wireshark."""
