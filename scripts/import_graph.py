"""Print the import graph between Talkpay's apps (tests and migrations aside):
`PYTHONPATH=. .venv/bin/python scripts/import_graph.py`."""

import collections
import os

import grimp

APPS = ["web", "booking", "billing", "payouts", "workers", "common"]


def main() -> None:
    present = [app for app in APPS if os.path.isdir(app)]
    graph = grimp.build_graph(*present)
    edges: collections.Counter = collections.Counter()
    for module in graph.modules:
        if ".tests" in module or ".migrations" in module:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = module.split(".")[0], imported.split(".")[0]
            if ".tests" not in imported and source != target and target in present:
                edges[(source, target)] += 1
    for (source, target), count in sorted(edges.items()):
        print(f"{source} -> {target}: {count} module imports")


if __name__ == "__main__":
    main()
