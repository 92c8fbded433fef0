#!/usr/bin/env python3
"""Prints values of an environment file: environment-value.py ENV KEY... (KEY like
aws.account_id: a top-level section and one of its plain values), one per line.

The workflows need a few scalars of templates/environments/ENV.yaml before shopctl is
built, on runners that may have no YAML library; this reads the two plain levels those
live at. shopctl/tests/delivery.rs checks its answers against shopctl's own reading of
every environment.
"""
import re
import sys

env, keys = sys.argv[1], sys.argv[2:]
try:
    lines = open(f"templates/environments/{env}.yaml").read().splitlines()
except FileNotFoundError:
    sys.exit(f"no environment {env}: templates/environments/{env}.yaml does not exist")
found, section = {}, None
for line in lines:
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    top = re.match(r"^([a-z_]+):", line)
    if top:
        section = top.group(1)
        continue
    child = re.match(r'^  ([a-z_]+): *"?([^"#\[{]*?)"? *(#.*)?$', line)
    if child and section:
        found[f"{section}.{child.group(1)}"] = child.group(2).strip()
for key in keys:
    if key not in found:
        sys.exit(f"{env}: no plain value {key}")
    print(found[key])
