"""Model serving: load an artifact, compute features with the training SQL, predict; and a small HTTP server.

Example:
    >>> predictor = Predictor.from_artifact(make_artifact(pipeline, spec))
    >>> predictor.predict([{"timestamp": "2011-03-01 08:00:00", "temp": 0.3, ...}])

    $ python -m aikube.serving --artifact-uri file:///state/registry/.../model.joblib --version v1 --port 0
"""

from aikube.serving.predictor import Predictor, make_artifact
from aikube.serving.server import make_server

__all__ = ["Predictor", "make_artifact", "make_server"]
