variable "name" {
  description = "Name prefix for the roles, normally the cluster name (roles become <name>-db-backup, ...)."
  type        = string
}

variable "region" {
  description = "AWS region of the environment (for the lock table's ARN)."
  type        = string
}

variable "account_id" {
  description = "The environment's 12-digit AWS account (for the lock table's ARN)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
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

variable "deploy_namespaces" {
  description = "Namespaces the deploy identity may edit (the platform's and its observability stack's)."
  type        = list(string)

  validation {
    condition     = length(var.deploy_namespaces) > 0
    error_message = "deploy_namespaces must name at least one namespace."
  }
}

variable "deployer_group" {
  description = "Kubernetes group of the deploy identity; the cluster base binds its cluster-wide reads to it."
  type        = string

  validation {
    condition     = !can(regex("^(system|eks|aws|amazon|iam):", var.deployer_group))
    error_message = "EKS refuses Kubernetes groups starting with system:, eks:, aws:, amazon: or iam:."
  }
}

variable "planner_group" {
  description = "Kubernetes group of the plan identity; the cluster base lets it read the Helm releases Terraform manages."
  type        = string

  validation {
    condition     = !can(regex("^(system|eks|aws|amazon|iam):", var.planner_group))
    error_message = "EKS refuses Kubernetes groups starting with system:, eks:, aws:, amazon: or iam:."
  }
}

variable "cluster_name" {
  description = "EKS cluster the access entry belongs to (the eks module's output, so the entry waits for the cluster)."
  type        = string
}

variable "cluster_arn" {
  description = "EKS cluster the deploy role may describe (the eks module's output)."
  type        = string
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
  description = "KMS key the backup bucket encrypts with (backups are written and read with it)."
  type        = string
}

variable "state_bucket" {
  description = "Bucket holding the Terraform state (created by `shopctl infra bootstrap`)."
  type        = string
}

variable "state_key" {
  description = "Key of the environment's Terraform state in the state bucket."
  type        = string
}

variable "use_lockfile" {
  description = "Whether the state is also locked by a lock file beside it (S3 use_lockfile)."
  type        = bool
}

variable "lock_table" {
  description = "DynamoDB table of the Terraform state locks."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may assume the GitHub roles (GitHub OIDC)."
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

variable "images_environment" {
  description = "GitHub environment whose jobs may assume the image push role."
  type        = string
  default     = "images"
}

variable "plan_subjects" {
  description = "GitHub OIDC subjects (after repo:<owner>/<name>:) that may assume the plan role: pull requests, and the default branch (its scheduled drift check)."
  type        = list(string)
  default     = ["pull_request", "ref:refs/heads/main"]
}

variable "ecr_repository_arns" {
  description = "ECR repositories the image role may push to."
  type        = list(string)
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
