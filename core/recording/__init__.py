"""Recording domain (pure): RTP timeline maths, Opus packet facts, segment sidecars, manifest."""
