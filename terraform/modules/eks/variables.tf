variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold up to 100 letters, digits or dashes."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version, e.g. \"1.33\" (the environment's cluster.kubernetes_version)."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33."
  }
}

variable "vpc_id" {
  description = "VPC the cluster runs in."
  type        = string
}

variable "control_plane_subnet_ids" {
  description = "Subnets for the control plane's network interfaces only (one per zone)."
  type        = list(string)

  validation {
    condition     = length(var.control_plane_subnet_ids) >= 2
    error_message = "EKS needs control-plane subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the nodes and their pods (one per zone)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "public_endpoint_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; empty keeps the endpoint private only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.public_endpoint_cidrs : can(cidrnetmask(cidr)) && cidr != "0.0.0.0/0"])
    error_message = "public_endpoint_cidrs must be valid CIDRs, and never 0.0.0.0/0."
  }
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_count" {
  description = "Desired, minimum and maximum nodes."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = { desired = 3, min = 3, max = 6 }

  validation {
    condition     = var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max && var.node_count.min >= 1
    error_message = "node_count must satisfy 1 <= min <= desired <= max."
  }
}

variable "node_volume_size_gib" {
  description = "Root volume of each node, GiB (encrypted gp3)."
  type        = number
  default     = 50

  validation {
    condition     = var.node_volume_size_gib >= 20 && var.node_volume_size_gib <= 1000
    error_message = "node_volume_size_gib must be between 20 and 1000."
  }
}

variable "log_retention_days" {
  description = "Days to keep control-plane logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
