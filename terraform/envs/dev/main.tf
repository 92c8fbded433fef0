# dev: one NAT gateway, a small node group, the same platform module as prod.

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      Project     = "shopmicro"
      Environment = "dev"
      ManagedBy   = "terraform"
    }
  }
}

module "platform" {
  source                  = "../../modules/platform"
  region                  = var.region
  account_id              = var.account_id
  cluster_name            = var.cluster_name
  kubernetes_version      = var.kubernetes_version
  namespace               = var.namespace
  backup_bucket           = var.backup_bucket
  backup_prefix           = var.backup_prefix
  github_repository       = var.github_repository
  public_endpoint_cidrs   = var.public_endpoint_cidrs
  environment             = var.environment
  observability_namespace = var.observability_namespace
  deployer_group          = var.deployer_group
  state_bucket            = var.state_bucket
  state_key               = var.state_key
  lock_table              = var.lock_table
  use_lockfile            = var.use_lockfile
  single_nat_gateway      = true
  node_instance_types     = ["t3.large"]
  node_count              = { desired = 3, min = 3, max = 4 }
}
