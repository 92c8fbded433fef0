output "role_arn" {
  description = "IAM role of the controller's service account."
  value       = aws_iam_role.controller.arn
}

output "ingress_class" {
  description = "IngressClass the controller serves."
  value       = var.ingress_class
}

output "namespace" {
  description = "Namespace of the controller and its Helm release."
  value       = var.namespace
}
