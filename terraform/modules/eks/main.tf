# An EKS cluster whose control plane's network interfaces live in dedicated subnets:
# private API endpoint (public only from listed CIDRs), Secrets envelope-encrypted with a
# KMS key of its own, every control-plane log type, a managed node group in the private
# subnets on encrypted launch-template volumes with IMDSv2 and no SSH, the OIDC provider
# that IRSA roles trust, and the add-ons the manifests rely on, each with its own IRSA
# role: the VPC CNI with NetworkPolicy enforcement on, the EBS CSI driver with grants on
# the volume key the StorageClass names, and metrics-server for the autoscaler.

data "aws_partition" "current" {}

locals {
  oidc_issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

# In a key policy, "*" is the key itself: the checks below read it as "every resource".
data "aws_iam_policy_document" "account_key" {
  #checkov:skip=CKV_AWS_109:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_111:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_356:a key policy's resource is always this key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

# Nodes are launched by the Auto Scaling service-linked role, which must be able to use
# the volume key: it gets that from the key policy, not from IAM.
data "aws_iam_policy_document" "volumes_key" {
  #checkov:skip=CKV_AWS_109:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_111:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_356:a key policy's resource is always this key
  source_policy_documents = [data.aws_iam_policy_document.account_key.json]
  statement {
    sid       = "AutoScalingUsesKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
  }
  statement {
    sid       = "AutoScalingGrantsForVolumes"
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_kms_key" "secrets" {
  description         = "${var.cluster_name} Kubernetes Secrets envelope encryption"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.account_key.json
  tags                = var.tags
}

resource "aws_kms_key" "logs" {
  description         = "${var.cluster_name} control-plane logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.logs_key.json
  tags                = var.tags
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "logs_key" {
  #checkov:skip=CKV_AWS_109:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_111:a key policy's resource is always this key
  #checkov:skip=CKV_AWS_356:a key policy's resource is always this key
  source_policy_documents = [data.aws_iam_policy_document.account_key.json]
  statement {
    sid       = "CloudWatchLogsEncrypts"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

# EKS writes its control-plane logs here; creating the group first sets retention and
# encryption (EKS would otherwise create it with neither).
resource "aws_cloudwatch_log_group" "control_plane" {
  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "assume_eks" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.cluster_name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.assume_eks.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_eks_cluster" "this" {
  name                      = var.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = var.control_plane_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_endpoint_cidrs) > 0
    public_access_cidrs     = length(var.public_endpoint_cidrs) > 0 ? var.public_endpoint_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.secrets.arn
    }
  }

  # Access entries only (no aws-auth ConfigMap); whoever creates the cluster (the identity
  # running `shopctl up`) is its administrator and applies the cluster base.
  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.control_plane]
}

# IRSA: service accounts assume IAM roles through the cluster's OIDC issuer. The
# thumbprint is not used for EKS issuers any more (AWS trusts its own CA) but is required.
resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
  tags            = var.tags
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "nodes" {
  name               = "${var.cluster_name}-nodes"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

# The CNI's permissions are its own (IRSA, below), not every pod's through the node.
resource "aws_iam_role_policy_attachment" "nodes" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

resource "aws_kms_key" "volumes" {
  description         = "${var.cluster_name} node volumes"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.volumes_key.json
  tags                = var.tags
}

resource "aws_launch_template" "nodes" {
  name_prefix = "${var.cluster_name}-nodes-"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.node_volume_size_gib
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.volumes.arn
      delete_on_termination = true
    }
  }

  # IMDSv2 only, one hop: pods cannot borrow the node's role through the metadata service.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.cluster_name}-node" })
  }

  tags = var.tags
}

# No remote_access block: nodes accept no SSH; operators use SSM if they must.
resource "aws_eks_node_group" "default" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "default"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = var.private_subnet_ids
  instance_types  = var.node_instance_types

  scaling_config {
    desired_size = var.node_count.desired
    min_size     = var.node_count.min
    max_size     = var.node_count.max
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.nodes.id
    version = aws_launch_template.nodes.latest_version
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.nodes]

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }
}

# IRSA: each add-on's service account may assume its role, and nothing else may. The
# policies are JSON documents the tests read too (terraform/modules/iam/policies).
locals {
  service_accounts = {
    ebs_csi = { namespace = "kube-system", name = "ebs-csi-controller-sa" }
    vpc_cni = { namespace = "kube-system", name = "aws-node" }
  }
  irsa_trust = {
    for role, account in local.service_accounts : role => templatefile("${path.module}/../iam/policies/irsa-trust.json.tftpl", {
      provider_arn    = aws_iam_openid_connect_provider.this.arn
      issuer          = local.oidc_issuer
      namespace       = account.namespace
      service_account = account.name
    })
  }
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${var.cluster_name}-ebs-csi"
  assume_role_policy = local.irsa_trust["ebs_csi"]
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

# The key persistent volumes are encrypted with, under the alias the StorageClass names.
resource "aws_kms_key" "ebs" {
  description         = "${var.cluster_name} persistent volumes"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.account_key.json
  tags                = var.tags
}

resource "aws_kms_alias" "ebs" {
  name          = "alias/${var.cluster_name}-ebs"
  target_key_id = aws_kms_key.ebs.key_id
}

# The managed policy covers volumes, not a customer-managed key: the driver creates
# volumes with the key and lets EC2 use it through grants.
resource "aws_iam_role_policy" "ebs_csi_key" {
  name = "volume-key"
  role = aws_iam_role.ebs_csi.id
  policy = templatefile("${path.module}/policies/ebs-csi-key.json.tftpl", {
    key_arn = aws_kms_key.ebs.arn
  })
}

resource "aws_eks_addon" "ebs_csi" {
  cluster_name             = aws_eks_cluster.this.name
  addon_name               = "aws-ebs-csi-driver"
  service_account_role_arn = aws_iam_role.ebs_csi.arn
  tags                     = var.tags
  depends_on               = [aws_eks_node_group.default]
}

resource "aws_iam_role" "vpc_cni" {
  name               = "${var.cluster_name}-vpc-cni"
  assume_role_policy = local.irsa_trust["vpc_cni"]
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "vpc_cni" {
  role       = aws_iam_role.vpc_cni.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"
}

# Pods get VPC addresses, and NetworkPolicies are enforced (by the CNI's network policy
# agent): without this every policy the manifests carry, default-deny included, would be
# decoration.
resource "aws_eks_addon" "vpc_cni" {
  cluster_name             = aws_eks_cluster.this.name
  addon_name               = "vpc-cni"
  service_account_role_arn = aws_iam_role.vpc_cni.arn
  configuration_values     = jsonencode({ enableNetworkPolicy = "true" })
  tags                     = var.tags
}

# Resource metrics for the HorizontalPodAutoscaler (and `kubectl top`).
resource "aws_eks_addon" "metrics_server" {
  cluster_name = aws_eks_cluster.this.name
  addon_name   = "metrics-server"
  tags         = var.tags
  depends_on   = [aws_eks_node_group.default]
}
