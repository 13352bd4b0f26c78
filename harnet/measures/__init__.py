"""Measures: the per-window table -> minute, hour, day, night and recording tables, one module per
family, pure functions over arrays; every measure is defined in docs/outputs.md."""
