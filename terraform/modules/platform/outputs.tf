output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "API server endpoint."
  value       = module.eks.cluster_endpoint
}

output "db_backup_role_arn" {
  description = "IRSA role of the backup job."
  value       = module.iam.db_backup_role_arn
}

output "deploy_role_arn" {
  description = "Role the GitHub deploy workflows assume."
  value       = module.iam.deploy_role_arn
}

output "images_role_arn" {
  description = "Role the image build workflow assumes."
  value       = module.iam.images_role_arn
}

output "plan_role_arn" {
  description = "Role the plan and drift workflows assume."
  value       = module.iam.plan_role_arn
}

output "cluster_ca_data" {
  description = "Base64 CA certificate of the API server."
  value       = module.eks.cluster_ca_data
}
