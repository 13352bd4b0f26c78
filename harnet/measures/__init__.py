"""Study measures: the per-window table -> minute, hour, day, night and recording tables.

One module per family (intensity, bouts, sleep, circadian, tables); pure functions over arrays,
each measure defined in ``docs/outputs.md``.
"""
