"""Mininet labs for scitags-p4: topology files -> hosts, P4 target switches, cleanup."""
