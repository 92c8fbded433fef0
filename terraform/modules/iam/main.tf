# Least-privilege roles. Every policy is a JSON document under policies/, read here with
# templatefile, so the tests load the very same documents (shopctl/tests/identities.rs):
#
# - db-backup: the backup CronJob's IRSA role, its own bucket prefix and nothing else;
# - github-deploy: deploy, roll back and validate (jobs in the protected environments);
# - github-images: push the platform's images (jobs in the `images` environment);
# - github-plan: read-only plan and drift (pull requests, the default branch), which may
#   still take the state lock, as a plan does.

data "aws_partition" "current" {}

locals {
  partition      = data.aws_partition.current.partition
  state_bucket   = "arn:${local.partition}:s3:::${var.state_bucket}"
  lock_table     = "arn:${local.partition}:dynamodb:${var.region}:${var.account_id}:table/${var.lock_table}"
  github_subject = "repo:${var.github_repository}"
}

resource "aws_iam_role" "db_backup" {
  name        = "${var.name}-db-backup"
  description = "The db-backup CronJob: write, read and prune backups under its prefix"
  assume_role_policy = templatefile("${path.module}/policies/irsa-trust.json.tftpl", {
    provider_arn    = var.oidc_provider_arn
    issuer          = var.oidc_issuer
    namespace       = var.namespace
    service_account = "db-backup"
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "db_backup" {
  name = "backups"
  role = aws_iam_role.db_backup.id
  policy = templatefile("${path.module}/policies/db-backup.json.tftpl", {
    backup_bucket_arn  = var.backup_bucket_arn
    backup_prefix      = var.backup_prefix
    backup_kms_key_arn = var.backup_kms_key_arn
  })
}

resource "aws_iam_openid_connect_provider" "github" {
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  # Required by the API; AWS validates GitHub's certificate itself.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
  tags            = var.tags
}

resource "aws_iam_role" "deploy" {
  name        = "${var.name}-github-deploy"
  description = "GitHub Actions of ${var.github_repository}: deploy to, roll back and validate ${var.name}"
  # Only jobs in the repository's protected environments: their protection rules gate it.
  assume_role_policy = templatefile("${path.module}/policies/github-trust.json.tftpl", {
    provider_arn = aws_iam_openid_connect_provider.github.arn
    subjects     = [for env in var.github_environments : "${local.github_subject}:environment:${env}"]
  })
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "deploy" {
  name = "deploy"
  role = aws_iam_role.deploy.id
  policy = templatefile("${path.module}/policies/deploy.json.tftpl", {
    cluster_arn        = var.cluster_arn
    state_bucket_arn   = local.state_bucket
    state_key          = var.state_key
    use_lockfile       = var.use_lockfile
    lock_table_arn     = local.lock_table
    backup_bucket_arn  = var.backup_bucket_arn
    backup_prefix      = var.backup_prefix
    backup_kms_key_arn = var.backup_kms_key_arn
  })
}

resource "aws_iam_role" "images" {
  name        = "${var.name}-github-images"
  description = "GitHub Actions of ${var.github_repository}: push the platform's images to ${var.name}'s registry"
  assume_role_policy = templatefile("${path.module}/policies/github-trust.json.tftpl", {
    provider_arn = aws_iam_openid_connect_provider.github.arn
    subjects     = ["${local.github_subject}:environment:${var.images_environment}"]
  })
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "images" {
  name = "push"
  role = aws_iam_role.images.id
  policy = templatefile("${path.module}/policies/images.json.tftpl", {
    repository_arns = var.ecr_repository_arns
  })
}

resource "aws_iam_role" "plan" {
  name        = "${var.name}-github-plan"
  description = "GitHub Actions of ${var.github_repository}: terraform plan and drift for ${var.name}, read-only"
  assume_role_policy = templatefile("${path.module}/policies/github-trust.json.tftpl", {
    provider_arn = aws_iam_openid_connect_provider.github.arn
    subjects     = [for subject in var.plan_subjects : "${local.github_subject}:${subject}"]
  })
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "plan" {
  name = "plan"
  role = aws_iam_role.plan.id
  policy = templatefile("${path.module}/policies/plan.json.tftpl", {
    state_bucket_arn  = local.state_bucket
    state_key         = var.state_key
    use_lockfile      = var.use_lockfile
    lock_table_arn    = local.lock_table
    backup_bucket_arn = var.backup_bucket_arn
  })
}

# The plan identity in Kubernetes: no access policy, only a Kubernetes group, for which the
# cluster base grants reading the Helm release Terraform manages (in the load balancer
# controller's own namespace). A plan refreshes it; it reads nothing else in the cluster.
resource "aws_eks_access_entry" "plan" {
  cluster_name      = var.cluster_name
  principal_arn     = aws_iam_role.plan.arn
  kubernetes_groups = [var.planner_group]
  tags              = var.tags
}

# The deploy identity in Kubernetes: the EKS edit policy in the platform's namespaces
# only, and a Kubernetes group for which the cluster base (applied by an administrator)
# grants the cluster-wide reads a deploy needs. Nothing cluster-scoped can be written.
resource "aws_eks_access_entry" "deploy" {
  cluster_name      = var.cluster_name
  principal_arn     = aws_iam_role.deploy.arn
  kubernetes_groups = [var.deployer_group]
  tags              = var.tags
}

resource "aws_eks_access_policy_association" "deploy" {
  cluster_name  = aws_eks_access_entry.deploy.cluster_name
  principal_arn = aws_eks_access_entry.deploy.principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
  access_scope {
    type       = "namespace"
    namespaces = var.deploy_namespaces
  }
}
