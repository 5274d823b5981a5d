variable "project_id" {
  description = "The Google Cloud project of the topics, subscriptions, service accounts, bucket and dataset."
  type        = string
}

variable "region" {
  description = "Default region of the provider (the GKE cluster and Artifact Registry are expected there)."
  type        = string
  default     = "europe-west1"
}

variable "location" {
  description = "Location of the bucket and the BigQuery dataset (a multi-region such as EU, or a region)."
  type        = string
  default     = "EU"
}

variable "namespace" {
  description = "Kubernetes namespace of the AIkube workloads (k8s/overlays/*: namespace), for Workload Identity."
  type        = string
  default     = "aikube"
}

variable "bucket_name" {
  description = "Name of the object store bucket; null means <project_id>-aikube."
  type        = string
  default     = null
}

variable "dataset_id" {
  description = "BigQuery dataset of the warehouse (raw and feature tables)."
  type        = string
  default     = "aikube"
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept (the bucket is versioned)."
  type        = number
  default     = 30
}

variable "idempotency_marker_days" {
  description = "Days the markers of handled events are kept; longer than the subscriptions' 7-day retention (and any seek back you plan)."
  type        = number
  default     = 14
}

variable "sdk_publishers" {
  # e.g. ["serviceAccount:loader@other-project.iam.gserviceaccount.com"]
  description = "IAM members allowed to publish the events of external producers (aikube-sdk: the SDK, `aikube publish`)."
  type        = list(string)
  default     = []
}
