"""`make bench`: run every full benchmark in turn; each writes its own docs/performance.md section."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.export",
    "bench.replay_time",
    "bench.recorder",
    "bench.send_path",
    "bench.sfu",
    "bench.sfu_edge",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                print(f"{name}: not written yet, skipped", file=sys.stderr)
                continue
            raise
        print(f"== {name}", flush=True)
        if module.main([]) != 0:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
