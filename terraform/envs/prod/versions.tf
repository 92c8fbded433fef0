terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.12, < 3.0"
    }
  }

  # Partial configuration: shopctl fills in bucket, key, region and locking from the
  # environment's values (templates/environments/<env>.yaml), so none is repeated here.
  backend "s3" {}
}
