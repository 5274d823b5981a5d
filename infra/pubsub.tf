# Topics, subscriptions and dead-letter topics of the catalog, the same topology aikube.bus.PubSubBus.provision
# creates on the emulator, and the Pub/Sub IAM of each service (least privilege: nothing at project level).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Pub/Sub's service agent forwards undeliverable messages to the dead-letter topics: it must publish there and
  # subscribe to the source subscription (otherwise dead-lettering silently does not happen).
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "event" {
  for_each = local.topics

  name   = each.key
  labels = { app = "aikube", producer = each.value.producer }

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.subscriptions

  name   = each.value.dead_letter_topic
  labels = { app = "aikube", consumer = each.value.consumer }

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "event" {
  for_each = local.subscriptions

  name                    = each.key
  topic                   = google_pubsub_topic.event[each.value.topic].id
  ack_deadline_seconds    = local.delivery.ack_deadline_seconds
  enable_message_ordering = each.value.ordered
  labels                  = { app = "aikube", consumer = each.value.consumer }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = local.delivery.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = local.delivery.minimum_backoff
    maximum_backoff = local.delivery.maximum_backoff
  }

  # Never expire: a consumer scaled to zero for a month must not lose its subscription (the default TTL is 31 days).
  expiration_policy {
    ttl = ""
  }
}

# What reaches a dead-letter topic is kept for operators in an audit subscription of the same name (a topic without a
# subscription would drop it).
resource "google_pubsub_subscription" "dead_letter_audit" {
  for_each = local.subscriptions

  name                       = each.value.dead_letter_topic
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = local.delivery.ack_deadline_seconds
  message_retention_duration = "604800s"
  labels                     = { app = "aikube", consumer = each.value.consumer }

  expiration_policy {
    ttl = ""
  }
}

# -- IAM --------------------------------------------------------------------------------------------------------------

# Each service publishes only the topics it produces (catalog `producer`).
resource "google_pubsub_topic_iam_member" "producer" {
  for_each = local.publishers

  topic  = google_pubsub_topic.event[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.workload[each.value.service].email}"
}

# External producers (aikube-sdk) publish their topics through the members of var.sdk_publishers.
resource "google_pubsub_topic_iam_member" "external_producer" {
  for_each = local.external_publishers

  topic  = google_pubsub_topic.event[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = each.value.member
}

# Each service consumes only its own subscriptions.
resource "google_pubsub_subscription_iam_member" "consumer" {
  for_each = local.subscriptions

  subscription = google_pubsub_subscription.event[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.workload[each.value.consumer].email}"
}

# The runtime dead-letters an undecodable, foreign or schema-invalid message itself, with the reason attached
# (aikube.runtime): each consumer publishes to the dead-letter topics of its own subscriptions.
resource "google_pubsub_topic_iam_member" "consumer_dead_letter" {
  for_each = local.subscriptions

  topic  = google_pubsub_topic.dead_letter[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.workload[each.value.consumer].email}"
}

resource "google_pubsub_topic_iam_member" "service_agent_dead_letter" {
  for_each = local.subscriptions

  topic  = google_pubsub_topic.dead_letter[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "service_agent_source" {
  for_each = local.subscriptions

  subscription = google_pubsub_subscription.event[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
