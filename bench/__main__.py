"""Run every benchmark's `main()` in turn: `python -m bench`."""

from __future__ import annotations

import importlib

# Add a module here to include it in `python -m bench`.
MODULES = [
    "bench.bitrix24_rate",
    "bench.bitrix24_rate_shared",
    "bench.client_overhead",
    "bench.app_bench",
    "bench.poll",
    "bench.schedule",
]


def main() -> None:
    for name in MODULES:
        print(f"== {name}", flush=True)
        importlib.import_module(name).main()


if __name__ == "__main__":
    main()
