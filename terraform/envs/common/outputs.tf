output "cluster_name" {
  description = "EKS cluster name."
  value       = module.platform.cluster_name
}

output "cluster_endpoint" {
  description = "API server endpoint."
  value       = module.platform.cluster_endpoint
}

output "db_backup_role_arn" {
  description = "IRSA role of the backup job."
  value       = module.platform.db_backup_role_arn
}

output "deploy_role_arn" {
  description = "Role the GitHub deploy workflows assume."
  value       = module.platform.deploy_role_arn
}

output "images_role_arn" {
  description = "Role the image build workflow assumes."
  value       = module.platform.images_role_arn
}

output "plan_role_arn" {
  description = "Role the plan and drift workflows assume."
  value       = module.platform.plan_role_arn
}
