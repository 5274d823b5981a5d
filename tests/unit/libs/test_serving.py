"""Serving: the Predictor on a small trained pipeline, and the model server as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import aikube.serving
from aikube.datasets import DatasetSpec, infer_columns
from aikube.features import compute_features, model_columns
from aikube.serving import Predictor, make_artifact
from aikube.serving.__main__ import main as serving_main

SRC = Path(aikube.serving.__file__).resolve().parents[2]


def training_frame() -> pd.DataFrame:
    """Four days of hourly rows whose demand depends on hour, temperature and weather."""
    rng = np.random.default_rng(7)
    times = pd.date_range("2011-03-01", periods=96, freq="h")
    temp = rng.uniform(0, 1, len(times))
    weather = rng.choice(["clear", "rain"], len(times))
    demand = 10 * times.hour + 50 * temp - 30 * (weather == "rain")
    return pd.DataFrame(
        {
            "timestamp": times.strftime("%Y-%m-%d %H:%M:%S"),
            "temp": temp,
            "weather": weather,
            "secret": "x",
            "demand": demand,
            "busy": np.where(demand > 120, "yes", "no"),
        }
    )


def make_spec(task: str) -> DatasetSpec:
    """A spec over training_frame for either task."""
    frame = training_frame()
    target, other = ("demand", "busy") if task == "regression" else ("busy", "demand")
    return DatasetSpec(
        name="demo",
        timestamp="timestamp",
        target=target,
        task=task,
        drop=[other],  # type: ignore[arg-type]
        sensitive={"secret": "drop"},
        columns=infer_columns(frame, "timestamp"),
    )


def train(spec: DatasetSpec) -> Pipeline:
    """Fit a small pipeline on the features of training_frame."""
    features = compute_features(spec, training_frame())
    encode = ColumnTransformer([("weather", OneHotEncoder(), ["weather"])], remainder="passthrough")
    estimator = LinearRegression() if spec.task == "regression" else LogisticRegression(max_iter=1000)
    pipeline = Pipeline([("encode", encode), ("model", estimator)])
    return pipeline.fit(features[model_columns(spec)], features[spec.target])


@pytest.fixture(scope="module")
def regression() -> tuple[DatasetSpec, Pipeline]:
    """A fitted regression pipeline and its spec."""
    spec = make_spec("regression")
    return spec, train(spec)


def records(n: int = 5) -> list[dict[str, Any]]:
    """Unlabelled input records, as a client would send them."""
    frame = training_frame().drop(columns=["demand", "busy"]).tail(n)
    return frame.to_dict("records")  # type: ignore[return-value]


def test_predictor_matches_the_pipeline_on_features(regression: tuple[DatasetSpec, Pipeline]) -> None:
    """Predictions equal the pipeline applied to the features the training path computes."""
    spec, pipeline = regression
    predictor = Predictor.from_artifact(make_artifact(pipeline, spec))
    expected = pipeline.predict(compute_features(spec, pd.DataFrame(records()))[model_columns(spec)])
    np.testing.assert_allclose(predictor.predict(records()), expected)


def test_predictor_exposes_spec_and_task(regression: tuple[DatasetSpec, Pipeline]) -> None:
    """spec and task come from the artifact."""
    spec, pipeline = regression
    predictor = Predictor.from_artifact(make_artifact(pipeline, spec))
    assert (predictor.spec, predictor.task, predictor.classes) == (spec, "regression", None)


def test_predictor_accepts_a_data_frame(regression: tuple[DatasetSpec, Pipeline]) -> None:
    """A DataFrame input gives the same predictions as the list of records."""
    spec, pipeline = regression
    predictor = Predictor.from_artifact(make_artifact(pipeline, spec))
    np.testing.assert_allclose(predictor.predict(pd.DataFrame(records())), predictor.predict(records()))


def test_classification_returns_probabilities() -> None:
    """A classifier returns one probability row per record, columns in the order of classes."""
    spec = make_spec("classification")
    predictor = Predictor.from_artifact(make_artifact(train(spec), spec))
    probabilities = predictor.predict(records(4))
    assert probabilities.shape == (4, len(predictor.classes or []))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert predictor.classes == ["no", "yes"]


def test_missing_column_is_a_value_error(regression: tuple[DatasetSpec, Pipeline]) -> None:
    """A record lacking a feature column is a ValueError naming it."""
    spec, pipeline = regression
    predictor = Predictor.from_artifact(make_artifact(pipeline, spec))
    with pytest.raises(ValueError, match="temp"):
        predictor.predict([{k: v for k, v in records(1)[0].items() if k != "temp"}])


def test_no_records_is_a_value_error(regression: tuple[DatasetSpec, Pipeline]) -> None:
    """Predicting nothing is refused clearly."""
    predictor = Predictor.from_artifact(make_artifact(regression[1], regression[0]))
    with pytest.raises(ValueError, match="no records"):
        predictor.predict([])


@pytest.mark.parametrize("content", [b"not a joblib file", "pickled-but-wrong"])
def test_from_artifact_rejects_other_content(content: bytes | str) -> None:
    """Bytes that are not an artifact, or an artifact of the wrong shape, are a ValueError."""
    if isinstance(content, str):
        buffer = io.BytesIO()
        joblib.dump({"pipeline": None}, buffer)
        content = buffer.getvalue()
    with pytest.raises(ValueError, match="not a model artifact"):
        Predictor.from_artifact(content)


# --- the model server, as a real process


def start_server(artifact_uri: str, version: str) -> subprocess.Popen[str]:
    """Start `python -m aikube.serving` on a free port."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "aikube.serving", "--artifact-uri", artifact_uri, "--version", version, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_ready(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Read the ready line the server prints once it listens."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"server exited before ready: {process.stderr.read() if process.stderr else ''}"
    ready: dict[str, Any] = json.loads(line)
    return ready


def call(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """GET (no body) or POST JSON; return status and decoded JSON body, error statuses included."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def launched(
    regression: tuple[DatasetSpec, Pipeline], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Server processes for this module, started together so their (slow) imports overlap.

    "shared" serves the request tests, "to_stop" receives SIGTERM.
    """
    folder = tmp_path_factory.mktemp("artifact")
    artifact = folder / "model.joblib"
    artifact.write_bytes(make_artifact(regression[1], regression[0]))
    processes = {
        "shared": start_server(artifact.as_uri(), "v7"),
        "to_stop": start_server(str(artifact), "v1"),
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=10)


@pytest.fixture(scope="module")
def ready(launched: dict[str, subprocess.Popen[str]]) -> dict[str, Any]:
    """The ready line of the shared server."""
    return wait_ready(launched["shared"])


@pytest.fixture(scope="module")
def server(ready: dict[str, Any]) -> str:
    """Base URL of the shared server."""
    return f"http://{ready['host']}:{ready['port']}"


def test_ready_line_reports_a_real_port(ready: dict[str, Any]) -> None:
    """With --port 0 the ready line carries the bound port and the version."""
    assert ready["status"] == "ready" and ready["version"] == "v7" and ready["port"] > 0


def test_healthz(server: str) -> None:
    """GET /healthz answers ok with the served version."""
    assert call(server + "/healthz") == (200, {"status": "ok", "version": "v7"})


def test_predict(server: str, regression: tuple[DatasetSpec, Pipeline]) -> None:
    """POST /predict returns the Predictor's predictions for the records, with the version."""
    status, body = call(server + "/predict", {"records": records()})
    expected = Predictor.from_artifact(make_artifact(regression[1], regression[0])).predict(records())
    assert status == 200 and body["version"] == "v7"
    np.testing.assert_allclose(body["predictions"], expected)


@pytest.mark.parametrize(
    "body",
    [b"{not json", {"rows": []}, {"records": []}, {"records": [1, 2]}, {"records": [{"timestamp": "2011-03-01"}]}],
    ids=["not-json", "no-records-key", "empty", "not-objects", "missing-columns"],
)
def test_bad_input_is_400_with_error(server: str, body: Any) -> None:
    """Malformed or incomplete requests get 400 and a JSON error message."""
    status, reply = call(server + "/predict", body)
    assert status == 400 and reply["error"]


def test_unknown_route_is_404(server: str) -> None:
    """Unknown paths get 404 with a JSON error."""
    assert call(server + "/nope")[0] == 404


def test_sigterm_stops_the_server_cleanly(launched: dict[str, subprocess.Popen[str]]) -> None:
    """SIGTERM makes a listening server exit with status 0."""
    process = launched["to_stop"]
    wait_ready(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_missing_artifact_exits_with_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing artifact is reported on stderr with exit status 2, before anything listens."""
    missing = (tmp_path / "absent.joblib").as_uri()
    assert serving_main(["--artifact-uri", missing, "--version", "v1", "--port", "0"]) == 2
    assert "absent.joblib" in capsys.readouterr().err
