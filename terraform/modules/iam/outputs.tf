output "db_backup_role_arn" {
  description = "Role the db-backup service account assumes (the environment's backup.role_arn)."
  value       = aws_iam_role.db_backup.arn
}

output "deploy_role_arn" {
  description = "Role GitHub Actions assumes (the repository variable AWS_DEPLOY_ROLE_ARN)."
  value       = aws_iam_role.deploy.arn
}
