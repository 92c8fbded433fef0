variable "name" {
  description = "Name prefix for the roles, normally the cluster name (roles become <name>-db-backup, ...)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (the eks module's output)."
  type        = string
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer without scheme (the eks module's output)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the platform's service accounts."
  type        = string
  default     = "shopmicro"
}

variable "backup_bucket_arn" {
  description = "ARN of the bucket the database backups go to."
  type        = string

  validation {
    condition     = startswith(var.backup_bucket_arn, "arn:")
    error_message = "backup_bucket_arn must be a bucket ARN."
  }
}

variable "backup_prefix" {
  description = "Key prefix of the backups inside the bucket, e.g. postgres/."
  type        = string
  default     = "postgres/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.backup_prefix))
    error_message = "backup_prefix must be a non-empty key prefix ending in /."
  }
}

variable "backup_kms_key_arn" {
  description = "KMS key the backup bucket encrypts with (the backup job needs to use it); null for S3-managed keys."
  type        = string
  default     = null
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may deploy (GitHub OIDC)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_environments" {
  description = "GitHub environments whose jobs may assume the deploy role (their protection rules apply)."
  type        = list(string)
  default     = ["dev"]
}

variable "ecr_repository_arns" {
  description = "ECR repositories the deploy role may push to."
  type        = list(string)
}

variable "cluster_arn" {
  description = "EKS cluster the deploy role may describe (kubeconfig) and deploy to."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
