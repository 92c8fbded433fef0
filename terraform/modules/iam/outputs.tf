output "db_backup_role_arn" {
  description = "Role the db-backup service account assumes (the environment's backup.role_arn)."
  value       = aws_iam_role.db_backup.arn
}

output "deploy_role_arn" {
  description = "Role the deploy and rollback workflows assume."
  value       = aws_iam_role.deploy.arn
}

output "images_role_arn" {
  description = "Role the image build workflow assumes to push."
  value       = aws_iam_role.images.arn
}

output "plan_role_arn" {
  description = "Role the terraform plan and drift workflows assume."
  value       = aws_iam_role.plan.arn
}
