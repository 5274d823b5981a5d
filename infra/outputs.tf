output "topics" {
  description = "One topic per catalog event type."
  value       = sort(keys(local.topics))
}

output "subscriptions" {
  description = "Each consumer's subscription `<consumer>.<topic>` and its dead-letter topic."
  value       = { for name, sub in local.subscriptions : name => sub.dead_letter_topic }
}

output "service_accounts" {
  description = "Google service account of each workload: the iam.gke.io/gcp-service-account annotations of k8s/overlays/gke."
  value       = { for name, account in google_service_account.workload : name => account.email }
}

output "store_uri" {
  description = "AIKUBE_STORE of the gke overlay."
  value       = "gs://${google_storage_bucket.store.name}"
}

output "warehouse_uri" {
  description = "AIKUBE_WAREHOUSE of the gke overlay."
  value       = "bigquery://${var.project_id}/${google_bigquery_dataset.warehouse.dataset_id}"
}

output "image_registry" {
  description = "Registry of the image (k8s/overlays/gke `images:`)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
