"""A quick run of bench/soak.py: a real room on 127.0.0.1 held briefly, samples come out.

Checks the harness end to end (every listener heard audio, the server was sampled over time,
the growth figure is computed from those samples); no memory or CPU figure is asserted.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bench.soak import Sample, growth_last_half, render, soak


def test_growth_is_measured_from_half_time_to_the_end() -> None:
    samples = [
        Sample(0, 100.0, 0),
        Sample(10, 150.0, 5),
        Sample(20, 160.0, 5),
        Sample(30, 160.0, 5),
        Sample(40, 168.0, 5),
    ]
    assert growth_last_half(samples) == pytest.approx(8 / 160)  # 20 s → 40 s; warm-up ignored
    assert growth_last_half(samples[:1]) == 0.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_soak_samples_the_server_while_everyone_hears(tmp_path: Path) -> None:
    result = asyncio.run(soak(2, 3, 1, minutes=0.2, interval=4.0, logs=tmp_path))
    assert result.listeners_heard == 3 and result.received > 0
    assert len(result.samples) >= 3
    assert all(s.rss_mib > 10 for s in result.samples)
    assert any(s.cpu_percent > 0 for s in result.samples[1:])
    assert math.isfinite(result.growth_last_half)
    body = render(result, "python -m bench.soak --quick")
    assert "RSS growth over the last half" in body and "python -m bench.soak --quick" in body
