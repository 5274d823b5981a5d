# syntax=docker/dockerfile:1
# One image for AIkube: the six services, the training job and the model server. Each workload picks its entry point
# with the container `command`:
#   aikube-ingestor | aikube-feature-builder | aikube-drift-watcher | aikube-retrain-scheduler
#   aikube-trainer-dispatcher | aikube-deployer          the services (k8s/base/<service>.yaml)
#   python -m trainer_dispatcher.job                     the training job (a Kubernetes Job per request)
#   python -m aikube.serving --artifact-uri ... --port   the model server
#   aikube provision                                     topics and subscriptions on the Pub/Sub emulator (local)
#
# NOT BUILT OR RUN ON THE PROJECT'S MACHINES: they have no Docker engine, so neither this file nor the image is
# exercised by `make test`. The install step it runs (pip with constraints.txt, non-editable) is the one `make setup`
# runs, and the manifests in k8s/ are checked offline by tests/deploy/. Build with:
#   docker build -t aikube:dev .
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
COPY libs/aikube libs/aikube
COPY services services
# One virtualenv, copied whole into the runtime stage; the local aikube satisfies every service's `aikube` dependency.
RUN python -m venv /opt/aikube \
 && /opt/aikube/bin/pip install --prefer-binary -c constraints.txt \
      ./libs/aikube \
      ./services/ingestor \
      ./services/feature-builder \
      ./services/drift-watcher \
      ./services/retrain-scheduler \
      ./services/trainer-dispatcher \
      ./services/deployer

FROM python:3.11-slim

# The uid/gid the pod securityContext asserts (runAsUser/runAsGroup 10001, runAsNonRoot).
RUN groupadd --system --gid 10001 aikube \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin aikube

COPY --from=build /opt/aikube /opt/aikube
# The contracts: the catalog and the JSON Schemas every service validates against.
COPY events /opt/aikube/events

# The root filesystem is read-only in the cluster: HOME and the caches of matplotlib/DuckDB go to the /tmp emptyDir.
ENV PATH=/opt/aikube/bin:$PATH \
    AIKUBE_EVENTS_DIR=/opt/aikube/events \
    AIKUBE_HEALTH_PORT=8080 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# No default service: every Deployment and Job sets `command`.
CMD ["aikube", "--help"]
