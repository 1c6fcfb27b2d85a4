"""Pure audio maths for post-production: loudness metering (ITU-R BS.1770-4 / EBU R128), true
peak, gain decisions and limiting, and the mix plan. Numpy and scipy only; no I/O, no codecs."""
