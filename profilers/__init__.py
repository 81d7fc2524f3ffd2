"""Measurement: wall clock, instruction counts, hotspots, memory and GPU time."""
