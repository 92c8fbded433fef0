output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (one per zone), for the nodes and their pods."
  value       = aws_subnet.private[*].id
}

output "private_subnet_cidrs" {
  description = "Ranges of the private subnets: where pods get their addresses (the environment's cluster.pod_cidrs)."
  value       = aws_subnet.private[*].cidr_block
}

output "control_plane_subnet_ids" {
  description = "Subnets holding only the EKS control plane's network interfaces."
  value       = aws_subnet.control_plane[*].id
}

output "control_plane_subnet_cidrs" {
  description = "Ranges the API server's own connections come from (the environment's cluster.api_server_cidrs)."
  value       = aws_subnet.control_plane[*].cidr_block
}

output "public_subnet_cidrs" {
  description = "Ranges of the public subnets, where internet-facing load balancers live (the environment's ingress.source_cidrs)."
  value       = aws_subnet.public[*].cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (one per zone), for internet-facing load balancers."
  value       = aws_subnet.public[*].id
}

output "nat_public_ips" {
  description = "Egress addresses of the NAT gateways (to allow-list elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
