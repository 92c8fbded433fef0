output "bucket_arn" {
  description = "ARN of the state bucket."
  value       = aws_s3_bucket.state.arn
}

output "lock_table_arn" {
  description = "ARN of the lock table."
  value       = aws_dynamodb_table.locks.arn
}

output "kms_key_arn" {
  description = "Key the state is encrypted with."
  value       = aws_kms_key.state.arn
}
