"""Tests of scitags_core and its CLI subcommands (label, registry, firefly)."""
