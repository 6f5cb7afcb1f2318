"""The emulator as a client it was not written for sees it: the official Node SDK walks the marketplace flow.

`conformance/marketplace.mjs` prints one PASS or FAIL line per check; this test installs the pinned
SDK (`npm ci`, from the npm cache when it can) and fails on any FAIL. Skipped, with the reason, where
node or npm is missing or the install fails (no registry and no cache).
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from . import stripe_types
from .conftest import API_KEY

NODE_PROJECT = stripe_types.NODE_PROJECT
NODE_MAJOR_MIN = 20  # stripe 23 declares "engines": {"node": ">=20"}


def _node_or_skip():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the Node SDK conformance suite (found node=%s npm=%s)" % (node, npm))
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1)) if re.match(r"v(\d+)", version) else 0
    if major < NODE_MAJOR_MIN:
        pytest.skip("node %s is older than the SDK's minimum (%d)" % (version, NODE_MAJOR_MIN))
    return node, npm


@pytest.fixture(scope="module")
def node_sdk():
    """`npm ci` of the pinned SDK; offline first, so a warm cache needs no network."""
    node, npm = _node_or_skip()
    installed = os.path.join(stripe_types.SDK_DIR, "package.json")
    with open(os.path.join(NODE_PROJECT, "package-lock.json")) as f:
        pinned = json.load(f)["packages"]["node_modules/stripe"]["version"]
    if os.path.exists(installed):
        with open(installed) as f:
            if json.load(f)["version"] == pinned:
                return node  # already what the lock file says (npm ci would only unpack it again)
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]
    try:
        done = subprocess.run(cmd, cwd=NODE_PROJECT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("`npm ci` took more than 300 s (no registry and no cache?)")
    if done.returncode != 0:
        pytest.skip("`npm ci` failed, so the Node SDK is not installed: %s" % done.stderr.strip()[-500:])
    return node


def test_node_sdk_walks_the_marketplace_flow(node_sdk, emulator, record_property):
    done = subprocess.run(
        [node_sdk, "marketplace.mjs"],
        cwd=NODE_PROJECT,
        env=dict(
            os.environ,
            STRIPE_EMULATOR_URL=emulator.url,
            STRIPE_API_KEY=API_KEY,
            STRIPE_SUPPRESS_NOTICES="true",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    print(out)
    passed = [line for line in out.splitlines() if line.startswith("PASS ")]
    failed = [line for line in out.splitlines() if line.startswith("FAIL ")]
    summary = "Node SDK conformance (stripe %s): %d checks, %d passed, %d failed" % (
        _installed_version(),
        len(passed) + len(failed),
        len(passed),
        len(failed),
    )
    print(summary)
    record_property("summary", summary)
    assert re.search(r"^conformance totals: \d+ checks", out, re.M), "the script did not finish:\n%s\n%s" % (
        out,
        done.stderr,
    )
    assert len(passed) >= 30, summary
    assert not failed and done.returncode == 0, "\n".join([summary, *failed, done.stderr])


def test_committed_type_schema_is_the_pinned_sdks(node_sdk):
    """stripe_types.json is what the installed (pinned) SDK's declarations give: regenerate it on a bump."""
    derived = stripe_types.derive()
    committed = stripe_types.load_schema()
    assert derived["source"] == committed["source"]
    assert stripe_types.dump_schema(derived) == stripe_types.dump_schema(committed), (
        "stripe_types.json is stale: run `.venv/bin/python -m stripe_emulator.tests.stripe_types`"
    )


def _installed_version():
    with open(os.path.join(stripe_types.SDK_DIR, "package.json")) as f:
        return json.load(f)["version"]
