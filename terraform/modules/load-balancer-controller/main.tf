# The AWS Load Balancer Controller: it turns the platform's Ingress (class `alb`) into an
# ALB with IP targets. Installed by Helm into a namespace of its own (so reading its Helm
# release, which a `terraform plan` does, needs no access to kube-system), running as its
# own service account, which alone may assume the controller's IAM role (IRSA). The role's policy
# (policies/controller.json.tftpl) lets it create load balancers, target groups and
# security groups tagged for this cluster and change only those; WAF, Shield and Cognito
# integrations are switched off in the chart, so their permissions are not granted.

locals {
  service_account = "aws-load-balancer-controller"
}

resource "aws_iam_role" "controller" {
  name = "${var.cluster_name}-load-balancer-controller"
  assume_role_policy = templatefile("${path.module}/../iam/policies/irsa-trust.json.tftpl", {
    provider_arn    = var.oidc_provider_arn
    issuer          = var.oidc_issuer
    namespace       = var.namespace
    service_account = local.service_account
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "controller" {
  name = "load-balancers"
  role = aws_iam_role.controller.id
  policy = templatefile("${path.module}/policies/controller.json.tftpl", {
    cluster_name = var.cluster_name
  })
}

resource "helm_release" "controller" {
  name             = "aws-load-balancer-controller"
  namespace        = var.namespace
  create_namespace = true
  repository       = "https://aws.github.io/eks-charts"
  chart            = "aws-load-balancer-controller"
  version          = var.chart_version
  wait             = true

  set {
    name  = "clusterName"
    value = var.cluster_name
  }
  set {
    name  = "region"
    value = var.region
  }
  set {
    name  = "vpcId"
    value = var.vpc_id
  }
  set {
    name  = "serviceAccount.name"
    value = local.service_account
  }
  set {
    name  = "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn"
    value = aws_iam_role.controller.arn
  }
  set {
    name  = "ingressClass"
    value = var.ingress_class
  }
  set {
    name  = "enableShield"
    value = "false"
  }
  set {
    name  = "enableWaf"
    value = "false"
  }
  set {
    name  = "enableWafv2"
    value = "false"
  }
}
