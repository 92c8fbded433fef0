#!/usr/bin/env bash
# AWS credentials from the job's GitHub OIDC token, with no long-lived keys and no
# third-party action: the token goes to a file, and every AWS SDK and the AWS CLI assume
# $AWS_ROLE_ARN with it (the standard web-identity credential chain). The job needs
# `permissions: id-token: write`. Usage: aws-oidc-credentials.sh ROLE_ARN REGION
set -euo pipefail
role_arn=${1:?role ARN}
region=${2:?region}
token_file="$RUNNER_TEMP/aws-web-identity-token"
curl --fail --silent --show-error \
    -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
    "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=sts.amazonaws.com" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])' >"$token_file"
chmod 600 "$token_file"
{
    echo "AWS_WEB_IDENTITY_TOKEN_FILE=$token_file"
    echo "AWS_ROLE_ARN=$role_arn"
    echo "AWS_ROLE_SESSION_NAME=github-$GITHUB_RUN_ID"
    echo "AWS_REGION=$region"
} >>"$GITHUB_ENV"
