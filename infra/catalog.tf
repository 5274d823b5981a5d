# Everything event-shaped is derived from events/catalog.yaml, the single source of truth that the code, the tests and
# the emulator provisioning (aikube.bus.PubSubBus.provision) read too: a new event type, consumer or producer in the
# catalog becomes topics, subscriptions and IAM here without touching this folder. The locals below are pure functions
# of the catalog; tests/deploy/test_terraform.py evaluates them against a Python derivation of the same catalog.
locals {
  catalog = yamldecode(file("${path.module}/../events/catalog.yaml"))

  # The entries as aikube.catalog.Catalog.load reads them: missing or null consumers mean none, and only
  # `ordered_by: subject` orders delivery (the ordering key is the event subject).
  events = {
    for key, event in local.catalog.events : key => {
      topic     = event.topic
      producer  = event.producer
      consumers = try([for consumer in event.consumers : consumer], [])
      ordered   = try(event.ordered_by, null) == "subject"
    }
  }

  # Producers that are not workloads of the cluster: data sources publish through the SDK or `aikube publish`
  # (their publishers are var.sdk_publishers).
  external_producers = ["aikube-sdk"]

  # Redelivery and dead-lettering of every subscription: the defaults of aikube.bus.DeliveryPolicy.
  delivery = {
    max_delivery_attempts = 5
    minimum_backoff       = "1s"
    maximum_backoff       = "60s"
    ack_deadline_seconds  = 60
  }

  # One topic per event type, keyed by topic name.
  topics = { for key, event in local.events : event.topic => event }

  # The services: every producer and consumer of the catalog that runs in the cluster.
  services = toset(concat(
    [for event in values(local.events) : event.producer if !contains(local.external_producers, event.producer)],
    flatten([for event in values(local.events) : event.consumers]),
  ))

  # One subscription per (consumer, topic), named `<consumer>.<topic>`, with the dead-letter topic
  # `<subscription>.dead-letter` (aikube.catalog.subscription_name / dead_letter_topic).
  subscriptions = merge([
    for key, event in local.events : {
      for consumer in event.consumers : "${consumer}.${event.topic}" => {
        consumer          = consumer
        topic             = event.topic
        ordered           = event.ordered
        dead_letter_topic = "${consumer}.${event.topic}.dead-letter"
      }
    }
  ]...)

  # Publisher grants: the catalog producer of each topic, on that topic only.
  publishers = {
    for topic, event in local.topics : "${event.producer}/${topic}" => { service = event.producer, topic = topic }
    if !contains(local.external_producers, event.producer)
  }

  # Publisher grants of the external producers' topics, one per (member, topic).
  external_publishers = {
    for pair in setproduct(
      [for topic, event in local.topics : topic if contains(local.external_producers, event.producer)],
      var.sdk_publishers,
    ) : "${pair[1]}/${pair[0]}" => { topic = pair[0], member = pair[1] }
  }
}
