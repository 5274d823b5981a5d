"""An HTTP test double of the Kubernetes API server for the Job executor and the model-serving backend.

No API server can run on these machines, so `FakeKubernetes` stands in for one on 127.0.0.1 and a free port: the
official client talks to it over HTTP exactly as it would to a cluster. Every request body is validated strictly
against the official OpenAPI schema of Kubernetes 1.32 (`kubernetes_validate`), plus a subset of the API server's
own checks (names, labels, quantities, immutable fields, resourceVersion), and answered 422/409/400 like the real
server. Controllers are played one step per status read, as the test's plans say:

    with FakeKubernetes() as k8s:
        k8s.job_plan = lambda job: JobPlan("Failed", reason="DeadlineExceeded")
        executor = KubernetesExecutor("ns", "image", api=k8s.api_client(), poll_s=0.01)
"""

from k8s_api.server import FakeKubernetes, JobPlan, RolloutPlan

__all__ = ["FakeKubernetes", "JobPlan", "RolloutPlan"]
