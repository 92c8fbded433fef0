output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (one per zone), for the EKS control plane and nodes."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets (one per zone), for internet-facing load balancers."
  value       = aws_subnet.public[*].id
}

output "nat_public_ips" {
  description = "Egress addresses of the NAT gateways (to allow-list elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
