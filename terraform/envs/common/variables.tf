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
  description = "CIDRs that may reach the cluster's public endpoint: the deploying CI runners' egress (the environment's cluster.public_access_cidrs; empty: private only)."
  type        = list(string)
  default     = []
}

variable "environment" {
  description = "The environment's name (its values file and its GitHub environment)."
  type        = string
}

variable "observability_namespace" {
  description = "Namespace of the observability stack."
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
  description = "Bucket holding the Terraform state (the environment's terraform.state_bucket)."
  type        = string
}

variable "state_key" {
  description = "Key of this environment's state in the state bucket (shopctl sets it)."
  type        = string
}

variable "use_lockfile" {
  description = "Whether the state is also locked by a lock file (the environment's terraform.use_lockfile)."
  type        = bool
}

variable "lock_table" {
  description = "DynamoDB lock table (the environment's terraform.lock_table)."
  type        = string
}
