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

# Helm installs the cluster's controllers as the identity running Terraform (the cluster's
# creator, its administrator), with a short-lived token for the cluster being built.
data "aws_eks_cluster_auth" "this" {
  name = module.platform.cluster_name
}

provider "helm" {
  kubernetes {
    host                   = module.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(module.platform.cluster_ca_data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

module "platform" {
  source                       = "../../modules/platform"
  region                       = var.region
  account_id                   = var.account_id
  cluster_name                 = var.cluster_name
  kubernetes_version           = var.kubernetes_version
  namespace                    = var.namespace
  backup_bucket                = var.backup_bucket
  backup_prefix                = var.backup_prefix
  github_repository            = var.github_repository
  public_endpoint_cidrs        = var.public_endpoint_cidrs
  environment                  = var.environment
  observability_namespace      = var.observability_namespace
  deployer_group               = var.deployer_group
  planner_group                = var.planner_group
  ingress_class                = var.ingress_class
  ingress_controller_namespace = var.ingress_controller_namespace
  state_bucket                 = var.state_bucket
  state_key                    = var.state_key
  lock_table                   = var.lock_table
  use_lockfile                 = var.use_lockfile
  single_nat_gateway           = true
  node_instance_types          = ["t3.large"]
  node_count                   = { desired = 3, min = 3, max = 4 }
}
