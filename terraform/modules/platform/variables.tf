variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "account_id" {
  description = "The 12-digit AWS account the environment lives in (guards against applying to another)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster."
  type        = string
}

variable "namespace" {
  description = "Namespace the platform runs in."
  type        = string
}

variable "backup_bucket" {
  description = "Bucket for database backups."
  type        = string
}

variable "backup_prefix" {
  description = "Key prefix of the backups."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows deploy here."
  type        = string
  default     = "shopmicro/shopmicro"
}

variable "public_endpoint_cidrs" {
  description = "CIDRs that may reach the cluster's public endpoint (empty: private only)."
  type        = list(string)
  default     = []
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone."
  type        = bool
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
}

variable "node_count" {
  description = "Desired, minimum and maximum nodes."
  type = object({
    desired = number
    min     = number
    max     = number
  })
}

variable "environment" {
  description = "The environment's name (templates/environments/<name>.yaml); its GitHub environment's jobs may deploy."
  type        = string
}

variable "observability_namespace" {
  description = "Namespace of the observability stack (its agents run in <namespace>-agents)."
  type        = string
}

variable "planner_group" {
  description = "Kubernetes group of the plan identity (the environment's cluster.planner_group)."
  type        = string
}

variable "ingress_class" {
  description = "IngressClass the load balancer controller serves (the environment's ingress.class_name)."
  type        = string
}

variable "ingress_controller_namespace" {
  description = "Namespace of the load balancer controller (the environment's ingress.controller_namespace)."
  type        = string
}

variable "deployer_group" {
  description = "Kubernetes group of the deploy identity (the environment's cluster.deployer_group)."
  type        = string
}

variable "state_bucket" {
  description = "Bucket holding the Terraform state."
  type        = string
}

variable "state_key" {
  description = "Key of this environment's Terraform state."
  type        = string
}

variable "use_lockfile" {
  description = "Whether the state is also locked by a lock file (the environment's terraform.use_lockfile)."
  type        = bool
}

variable "lock_table" {
  description = "DynamoDB table of the Terraform state locks."
  type        = string
}
