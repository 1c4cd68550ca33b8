"""Data layer: Minari datasets -> device-resident transition tables."""
