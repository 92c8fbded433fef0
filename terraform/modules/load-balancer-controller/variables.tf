variable "cluster_name" {
  description = "EKS cluster the controller manages load balancers for (the eks module's output)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster (the controller does not look it up from instance metadata)."
  type        = string
}

variable "region" {
  description = "AWS region of the cluster."
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
  description = "Namespace the controller runs in (the environments' ingress.controller_namespace)."
  type        = string
  default     = "aws-load-balancer-controller"
}

variable "ingress_class" {
  description = "IngressClass the controller creates and serves (the environments' ingress.class_name)."
  type        = string
  default     = "alb"
}

variable "chart_version" {
  description = "Version of the eks-charts aws-load-balancer-controller chart."
  type        = string
  default     = "1.13.3"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
