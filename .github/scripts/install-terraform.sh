#!/usr/bin/env bash
# Installs the terraform every job uses, pinned and checksum-verified (HashiCorp's
# published SHA-256 of the linux_amd64 zip), into $RUNNER_TEMP and onto the job's PATH.
# The tests run the same version (shopctl/tests/delivery.rs).
set -euo pipefail
version=1.11.4
sha256=1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc
dir="${RUNNER_TEMP:-/tmp}/terraform-$version"
mkdir -p "$dir"
curl --fail --silent --show-error --location --output "$dir/terraform.zip" \
    "https://releases.hashicorp.com/terraform/$version/terraform_${version}_linux_amd64.zip"
echo "$sha256  $dir/terraform.zip" | sha256sum --check --strict --quiet
unzip -o -q "$dir/terraform.zip" terraform -d "$dir"
echo "$dir" >>"${GITHUB_PATH:-/dev/null}"
"$dir/terraform" version
