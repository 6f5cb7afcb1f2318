"""Print the import graph between Talkpay's apps (tests and migrations aside): `python -m scripts.import_graph`."""

import sys, grimp, collections

apps = ["web", "booking", "billing", "payouts", "workers", "common"]
present = [a for a in apps if __import__("os").path.isdir(a)]
g = grimp.build_graph(*present)
edges = collections.Counter()
for m in g.modules:
    if ".tests" in m or ".migrations" in m:
        continue
    for imp in g.find_modules_directly_imported_by(m):
        if ".tests" in imp:
            continue
        a, b = m.split(".")[0], imp.split(".")[0]
        if a != b and b in present:
            edges[(a, b)] += 1
for (a, b), n in sorted(edges.items()):
    print(f"{a} -> {b}: {n} module imports")
