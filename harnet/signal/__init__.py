"""Signal stages on raw recordings: window statistics, gravity calibration, non-wear, resampling
and clock-aligned windows (vectorised, chunked). Import the modules: ``harnet.signal.stats``,
``calibrate``, ``nonwear``, ``resample``, ``windows``.
"""
