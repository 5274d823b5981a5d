# One Google service account per workload, bound to the Kubernetes ServiceAccount of the same name (Workload
# Identity), and the data access each one needs. The Pub/Sub grants are in pubsub.tf.

locals {
  # Pods the services launch from the same image (k8s/base/workloads.yaml): the training Job per request and the
  # model-server Deployments. They publish and consume nothing.
  launched = ["training-job", "model-server"]

  workloads = setunion(local.services, local.launched)

  # Data access follows what each workload does with the store and the warehouse (not in the catalog). Every service
  # records idempotency marks in the store, hence read-write objects (objectUser: no object IAM, no bucket admin).
  storage_roles = {
    ingestor           = "roles/storage.objectUser"   # raw batches, rejects
    feature-builder    = "roles/storage.objectUser"   # dataset catalog reads, idempotency marks
    drift-watcher      = "roles/storage.objectUser"   # drift reports and results, model artifacts (read)
    retrain-scheduler  = "roles/storage.objectUser"   # policy state per model
    trainer-dispatcher = "roles/storage.objectUser"   # job records, model registry
    deployer           = "roles/storage.objectUser"   # model registry: champion, endpoint
    training-job       = "roles/storage.objectUser"   # candidate artifacts and metrics
    model-server       = "roles/storage.objectViewer" # the artifact it serves, read-only
  }

  # Warehouse access: writers edit tables, readers only read; both run query jobs (bigquery.jobUser, project level:
  # BigQuery has no narrower scope for running jobs).
  bigquery_roles = {
    ingestor        = "roles/bigquery.dataEditor" # appends raw tables
    feature-builder = "roles/bigquery.dataEditor" # materializes feature tables
    drift-watcher   = "roles/bigquery.dataViewer" # reads feature windows
    deployer        = "roles/bigquery.dataViewer" # reads the evaluation window
    training-job    = "roles/bigquery.dataViewer" # reads the training window
  }
}

resource "google_service_account" "workload" {
  for_each = local.workloads

  account_id   = each.key
  display_name = "AIkube ${each.key}"
  description  = "Kubernetes ServiceAccount ${var.namespace}/${each.key} through Workload Identity"

  depends_on = [google_project_service.api]
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workloads

  service_account_id = google_service_account.workload[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${each.key}]"
}

resource "google_storage_bucket_iam_member" "workload" {
  for_each = local.storage_roles

  bucket = google_storage_bucket.store.name
  role   = each.value
  member = "serviceAccount:${google_service_account.workload[each.key].email}"
}

resource "google_bigquery_dataset_iam_member" "workload" {
  for_each = local.bigquery_roles

  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = each.value
  member     = "serviceAccount:${google_service_account.workload[each.key].email}"
}

resource "google_project_iam_member" "bigquery_job_user" {
  for_each = local.bigquery_roles

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.workload[each.key].email}"
}
