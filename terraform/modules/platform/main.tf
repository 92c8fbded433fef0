# One environment's platform: network, cluster, backup bucket, image repositories and the
# roles that use them. The root stacks (envs/*) differ only in the inputs they pass.

# Zones named explicitly: a data-source lookup would move subnets when AWS adds a zone.
locals {
  availability_zones = [for suffix in ["a", "b", "c"] : "${var.region}${suffix}"]
}

module "vpc" {
  source             = "../vpc"
  name               = var.cluster_name
  cluster_name       = var.cluster_name
  availability_zones = local.availability_zones
  single_nat_gateway = var.single_nat_gateway
}

module "eks" {
  source                   = "../eks"
  cluster_name             = var.cluster_name
  kubernetes_version       = var.kubernetes_version
  vpc_id                   = module.vpc.vpc_id
  control_plane_subnet_ids = module.vpc.control_plane_subnet_ids
  private_subnet_ids       = module.vpc.private_subnet_ids
  public_endpoint_cidrs    = var.public_endpoint_cidrs
  node_instance_types      = var.node_instance_types
  node_count               = var.node_count
}

# Serves the Ingress the manifests declare (class `alb`).
module "load_balancer_controller" {
  source            = "../load-balancer-controller"
  cluster_name      = module.eks.cluster_name
  region            = var.region
  vpc_id            = module.vpc.vpc_id
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  namespace         = var.ingress_controller_namespace
  ingress_class     = var.ingress_class
  depends_on        = [module.eks]
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "backups_key" {
  # In a key policy, "*" is the key itself; access is then delegated to IAM policies
  # (the backup role's names this key).
  #checkov:skip=CKV_AWS_109:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_111:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_356:a key policy's resource is always this key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "backups" {
  description         = "${var.cluster_name} database backups"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.backups_key.json
}

# The name the environment file gives the backup job (backup.kms_key).
resource "aws_kms_alias" "backups" {
  name          = "alias/${var.cluster_name}-backups"
  target_key_id = aws_kms_key.backups.key_id
}

resource "aws_s3_bucket" "backups" {
  bucket = var.backup_bucket
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.backups.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    id     = "replaced-backup-objects"
    status = "Enabled"
    filter {}
    # shopctl's retention deletes whole backups; versions it leaves behind expire here.
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket                  = aws_s3_bucket.backups.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_ecr_repository" "images" {
  for_each             = toset(["shopmicro-frontend", "shopmicro-backend", "shopmicro-ml", "shopmicro-shopctl"])
  name                 = each.value
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

module "iam" {
  source             = "../iam"
  name               = var.cluster_name
  region             = var.region
  account_id         = var.account_id
  oidc_provider_arn  = module.eks.oidc_provider_arn
  oidc_issuer        = module.eks.oidc_issuer
  namespace          = var.namespace
  deploy_namespaces  = [var.namespace, var.observability_namespace, "${var.observability_namespace}-agents"]
  deployer_group     = var.deployer_group
  planner_group      = var.planner_group
  backup_bucket_arn  = aws_s3_bucket.backups.arn
  backup_prefix      = var.backup_prefix
  backup_kms_key_arn = aws_kms_key.backups.arn
  state_bucket       = var.state_bucket
  state_key          = var.state_key
  lock_table         = var.lock_table
  use_lockfile       = var.use_lockfile
  github_repository  = var.github_repository
  # Jobs in the GitHub environment named after this one deploy to it.
  github_environments = [var.environment]
  ecr_repository_arns = [for repo in aws_ecr_repository.images : repo.arn]
  # Module outputs, not rebuilt names: the access entry waits for the cluster.
  cluster_name = module.eks.cluster_name
  cluster_arn  = module.eks.cluster_arn
}
