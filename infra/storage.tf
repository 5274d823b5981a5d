# The object store (AIKUBE_STORE=gs://<bucket>), the warehouse (AIKUBE_WAREHOUSE=bigquery://<project>/<dataset>), the
# image registry (k8s/overlays/gke: REGION-docker.pkg.dev/PROJECT/aikube) and the APIs they need.

locals {
  bucket_name = coalesce(var.bucket_name, "${var.project_id}-aikube")
  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudtrace.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  service            = each.value
  disable_on_destroy = false
}

resource "google_storage_bucket" "store" {
  name                        = local.bucket_name
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  # A handled event's marker (idempotency/<service>/<key>) only matters while Pub/Sub can still redeliver the event:
  # its subscriptions keep messages 7 days. After that the marker is dead weight, one object per event.
  lifecycle_rule {
    condition {
      age            = var.idempotency_marker_days
      matches_prefix = ["idempotency/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_bigquery_dataset" "warehouse" {
  dataset_id                 = var.dataset_id
  location                   = var.location
  description                = "AIkube warehouse: raw batches and feature tables"
  delete_contents_on_destroy = false

  depends_on = [google_project_service.api]
}

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "aikube"
  format        = "DOCKER"
  description   = "The AIkube image (Dockerfile): services, training job, model server"

  depends_on = [google_project_service.api]
}
