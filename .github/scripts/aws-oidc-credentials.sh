#!/usr/bin/env bash
# AWS credentials for one of an environment's GitHub roles, from the job's GitHub OIDC
# token, exchanged with STS the moment it is fetched: the token goes from GitHub to STS
# through pipes, never to a file or a command line, so nothing that runs later in the job
# (build scripts included) can read it. The session's keys are masked and written to
# $GITHUB_ENV for the job's later steps. No long-lived keys, no third-party action; the
# job needs `permissions: id-token: write`.
#
# The role is the one terraform/modules/iam creates for the environment:
# arn:aws:iam::<aws.account_id>:role/<cluster.name>-github-<role>, the values read from
# templates/environments/<env>.yaml (shopctl/tests/delivery.rs checks the role's name
# against the Terraform for every environment).
#
# Usage: aws-oidc-credentials.sh ENV deploy|images|plan [--print-role-arn]
set -euo pipefail
env=${1:?usage: aws-oidc-credentials.sh ENV deploy|images|plan [--print-role-arn]}
role=${2:?usage: aws-oidc-credentials.sh ENV deploy|images|plan [--print-role-arn]}
case "$role" in
deploy | images | plan) ;;
*) echo "unknown role $role: deploy, images or plan" >&2; exit 2 ;;
esac
values=$(.github/scripts/environment-value.py "$env" aws.account_id aws.region cluster.name)
{ read -r account; read -r region; read -r cluster; } <<<"$values"
arn="arn:aws:iam::$account:role/$cluster-github-$role"
if [ "${3:-}" = "--print-role-arn" ]; then
    echo "$arn"
    exit 0
fi

sts=${AWS_ENDPOINT_URL:-https://sts.$region.amazonaws.com}
answer=$(
    curl --fail --silent --show-error \
        -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
        "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=sts.amazonaws.com" |
        python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["value"])' |
        curl --fail --silent --show-error "${sts%/}/" \
            --data-urlencode "Action=AssumeRoleWithWebIdentity" \
            --data-urlencode "Version=2011-06-15" \
            --data-urlencode "RoleArn=$arn" \
            --data-urlencode "RoleSessionName=github-${GITHUB_RUN_ID:-local}" \
            --data-urlencode "DurationSeconds=3600" \
            --data-urlencode "WebIdentityToken@-"
)
printf '%s' "$answer" | python3 -c '
import re, sys
answer = sys.stdin.read()
value = lambda name: re.search("<%s>([^<]*)</%s>" % (name, name), answer).group(1)
keys = {"AWS_ACCESS_KEY_ID": value("AccessKeyId"), "AWS_SECRET_ACCESS_KEY": value("SecretAccessKey"),
        "AWS_SESSION_TOKEN": value("SessionToken")}
for secret in keys.values():
    print("::add-mask::" + secret)
with open(sys.argv[1], "a") as env:
    for name, secret in keys.items():
        env.write("%s=%s\n" % (name, secret))
    env.write("AWS_REGION=%s\n" % sys.argv[2])
sys.stderr.write("assumed %s until %s\n" % (sys.argv[3], value("Expiration")))
' "$GITHUB_ENV" "$region" "$arn"
