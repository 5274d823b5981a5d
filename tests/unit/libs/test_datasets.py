"""Dataset specs: YAML loading, validation, column roles, type inference, reading files, the catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aikube.datasets import DatasetCatalog, DatasetSpec, UnknownDataset, infer_columns, read_table
from aikube.storage import MemoryObjectStore

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def write_yaml(folder: Path, text: str) -> Path:
    """Write a spec file and return its path."""
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = "name: demo\ntimestamp: ts\ntarget: y\ntask: regression\n"


def spec(**overrides: object) -> DatasetSpec:
    """A small valid spec with declared columns."""
    fields: dict[str, object] = {
        "name": "demo",
        "timestamp": "ts",
        "target": "y",
        "task": "regression",
        "columns": {"ts": "timestamp", "a": "float", "b": "string", "c": "int", "secret": "string", "y": "float"},
    }
    return DatasetSpec.model_validate({**fields, **overrides})


def test_bikeshare_example_loads_with_resolved_path() -> None:
    """The example spec loads and its relative data path points at the shipped CSV."""
    loaded = DatasetSpec.from_yaml(EXAMPLES / "bikeshare.yaml")
    assert loaded.path is not None and Path(loaded.path).is_absolute() and Path(loaded.path).is_file()
    assert (loaded.target, loaded.batch, loaded.drop) == ("bikers", "7D", ["casual", "registered", "day"])


def test_relative_path_is_resolved_against_the_yaml_folder(tmp_path: Path) -> None:
    """A relative `path` is made absolute from the YAML's folder, not from the working directory."""
    loaded = DatasetSpec.from_yaml(write_yaml(tmp_path, MINIMAL + "path: data/x.csv\n"))
    assert loaded.path == str((tmp_path / "data" / "x.csv").resolve())


def test_uri_path_is_kept(tmp_path: Path) -> None:
    """A URI path is not touched."""
    loaded = DatasetSpec.from_yaml(write_yaml(tmp_path, MINIMAL + "path: gs://bucket/x.csv\n"))
    assert loaded.path == "gs://bucket/x.csv"


def test_sensitive_list_means_mask(tmp_path: Path) -> None:
    """A YAML list of sensitive columns masks each of them."""
    loaded = DatasetSpec.from_yaml(write_yaml(tmp_path, MINIMAL + "sensitive: [email, phone]\n"))
    assert loaded.sensitive == {"email": "mask", "phone": "mask"}


def test_sensitive_mapping_is_kept(tmp_path: Path) -> None:
    """A mapping gives each column its own action."""
    loaded = DatasetSpec.from_yaml(write_yaml(tmp_path, MINIMAL + "sensitive: {email: drop, phone: mask}\n"))
    assert loaded.sensitive == {"email": "drop", "phone": "mask"}


def test_bad_field_error_names_file_and_field(tmp_path: Path) -> None:
    """An invalid value is reported with the file and the field name."""
    path = write_yaml(tmp_path, MINIMAL.replace("regression", "ranking"))
    with pytest.raises(ValueError, match=r"spec\.yaml.*task"):
        DatasetSpec.from_yaml(path)


def test_nested_bad_field_error_names_the_path(tmp_path: Path) -> None:
    """A calendar-length cooldown is rejected and the error names retrain.cooldown."""
    path = write_yaml(tmp_path, MINIMAL + "retrain: {cooldown: MS}\n")
    with pytest.raises(ValueError, match=r"retrain\.cooldown"):
        DatasetSpec.from_yaml(path)


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    """A misspelt field is an error naming it, not silently ignored."""
    with pytest.raises(ValueError, match="targt"):
        DatasetSpec.from_yaml(write_yaml(tmp_path, MINIMAL + "targt: z\n"))


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    """A missing required field is named."""
    with pytest.raises(ValueError, match="target"):
        DatasetSpec.from_yaml(write_yaml(tmp_path, "name: demo\ntimestamp: ts\ntask: regression\n"))


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    """Unparsable YAML is a ValueError naming the file."""
    with pytest.raises(ValueError, match=r"spec\.yaml.*YAML"):
        DatasetSpec.from_yaml(write_yaml(tmp_path, "name: [unclosed\n"))


def test_non_mapping_yaml_is_rejected(tmp_path: Path) -> None:
    """A YAML list is not a spec."""
    with pytest.raises(ValueError, match="mapping"):
        DatasetSpec.from_yaml(write_yaml(tmp_path, "- a\n- b\n"))


def test_invalid_cron_schedule_is_rejected() -> None:
    """A schedule must be a cron expression."""
    with pytest.raises(ValueError, match="cron"):
        spec(retrain={"schedule": "every monday"})


def test_invalid_batch_alias_is_rejected() -> None:
    """batch must be a pandas offset alias."""
    with pytest.raises(ValueError, match="offset alias"):
        spec(batch="weekly")


def test_feature_columns_exclude_roles_and_keep_order() -> None:
    """Timestamp, target, dropped and sensitive columns (masked or dropped) are not features."""
    result = spec(drop=["c"], sensitive={"secret": "drop", "b": "mask"})
    assert result.feature_columns == ["a"]


def test_roles_must_be_declared_columns() -> None:
    """With declared columns, a dropped column that is not declared is an error naming `drop`."""
    with pytest.raises(ValueError, match="drop"):
        spec(drop=["nope"])


def test_timestamp_column_must_be_typed_timestamp() -> None:
    """The declared type of the timestamp column must be timestamp."""
    with pytest.raises(ValueError, match="timestamp"):
        spec(columns={"ts": "string", "y": "float"})


def test_target_cannot_be_dropped() -> None:
    """Dropping the target is a contradiction."""
    with pytest.raises(ValueError, match="'y'"):
        spec(drop=["y"])


def test_with_columns_validates_again() -> None:
    """with_columns checks the new columns against the roles."""
    base = DatasetSpec(name="demo", timestamp="ts", target="y", task="regression", drop=["gone"])
    with pytest.raises(ValueError, match="drop"):
        base.with_columns({"ts": "timestamp", "y": "float"})


def test_with_columns_errors_are_one_line_naming_the_dataset() -> None:
    """A role that the file's columns lack is reported in one line, not as a pydantic dump."""
    base = DatasetSpec(name="demo", timestamp="ts", target="label", task="regression")
    with pytest.raises(ValueError) as raised:
        base.with_columns({"ts": "timestamp", "y": "float"})
    message = str(raised.value)
    assert message.startswith("dataset 'demo': invalid dataset spec:") and "'label'" in message
    assert "\n" not in message and "errors.pydantic.dev" not in message


def test_regression_needs_a_numeric_target() -> None:
    """A text target cannot be regressed: refused at registration, not at the first training."""
    with pytest.raises(ValueError, match="regression needs a numeric target; 'b' is string"):
        spec(target="b")
    assert spec(target="b", task="classification").target == "b"


def test_drift_columns_must_be_feature_columns() -> None:
    """Drift over an unknown (or dropped) column would silently never drift: refused, naming it."""
    with pytest.raises(ValueError, match=r"drift.columns: \['nope', 'c'\] are not feature columns"):
        spec(drift={"columns": ["a", "nope", "c"]}, drop=["c"])
    assert spec(drift={"columns": ["a"]}).drift.columns == ["a"]


@pytest.mark.parametrize("name", ["hour", "day_of_week", "month"])
def test_a_column_named_like_a_calendar_feature_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"\\['{name}'\\] clash with the calendar features"):
        spec(columns={"ts": "timestamp", name: "int", "y": "float"})
    assert spec(columns={"ts": "timestamp", name: "int", "y": "float"}, drop=[name]).feature_columns == []


def test_infer_columns_maps_dtypes() -> None:
    """pandas dtypes map to ColumnType names; the timestamp column is a timestamp even as text."""
    frame = pd.DataFrame(
        {
            "ts": ["2011-01-01 00:00:00"],
            "i": [1],
            "f": [1.5],
            "s": ["x"],
            "b": [True],
            "d": pd.to_datetime(["2011-01-01"]),
            "cat": pd.Series(["u"], dtype="category"),
        }
    )
    assert infer_columns(frame, "ts") == {
        "ts": "timestamp",
        "i": "int",
        "f": "float",
        "s": "string",
        "b": "bool",
        "d": "timestamp",
        "cat": "string",
    }


def test_infer_columns_requires_the_timestamp_column() -> None:
    """A missing timestamp column is named in the error."""
    with pytest.raises(ValueError, match="'when'"):
        infer_columns(pd.DataFrame({"a": [1]}), "when")


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_read_table_by_extension(tmp_path: Path, name: str) -> None:
    """CSV, gzipped CSV and Parquet read back to the same frame."""
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_read_table_rejects_unknown_extension(tmp_path: Path) -> None:
    """An unsupported file type is a ValueError naming the file."""
    with pytest.raises(ValueError, match=r"t\.xlsx"):
        read_table(tmp_path / "t.xlsx")


def test_catalog_round_trip() -> None:
    """A registered spec is returned equal by get."""
    catalog = DatasetCatalog(MemoryObjectStore())
    original = spec(sensitive=["secret"], retrain={"schedule": "0 0 * * 1"})
    catalog.register(original)
    assert catalog.get("demo") == original


def test_catalog_stores_json_under_datasets() -> None:
    """The spec is stored as JSON at datasets/<name>.json."""
    store = MemoryObjectStore()
    DatasetCatalog(store).register(spec())
    assert store.get_json("datasets/demo.json")["target"] == "y"


def test_catalog_unknown_dataset() -> None:
    """get of an unregistered name raises UnknownDataset."""
    with pytest.raises(UnknownDataset, match="ghost"):
        DatasetCatalog(MemoryObjectStore()).get("ghost")


def test_catalog_rejects_invalid_name() -> None:
    """A name that cannot be a dataset name is a ValueError, not a lookup."""
    with pytest.raises(ValueError, match="dataset name"):
        DatasetCatalog(MemoryObjectStore()).get("../etc")


def test_catalog_refuses_spec_without_columns() -> None:
    """Registering before the columns are known is refused with a hint."""
    bare = DatasetSpec(name="demo", timestamp="ts", target="y", task="regression")
    with pytest.raises(ValueError, match="infer_columns"):
        DatasetCatalog(MemoryObjectStore()).register(bare)


def test_a_numeric_column_with_a_stray_value_stays_numeric() -> None:
    """One 'abc' among numbers is a bad cell for the ingestor to reject, not a reason to make the column text."""
    values = [str(v) for v in range(199)] + ["abc"]
    frame = pd.DataFrame({"ts": ["2011-01-01T00:00:00Z"] * 200, "temp": values, "city": ["a", "b"] * 100})
    assert infer_columns(frame, "ts") == {"ts": "timestamp", "temp": "float", "city": "string"}


def test_a_text_column_with_a_few_numbers_stays_text() -> None:
    frame = pd.DataFrame({"ts": ["2011-01-01"] * 4, "code": ["1", "2", "x", "y"]})
    assert infer_columns(frame, "ts")["code"] == "string"


@pytest.mark.parametrize("stamp", ["01/02/2011 00:00", "1293840000"])
def test_a_timestamp_column_that_is_not_iso_8601_is_refused(stamp: str) -> None:
    """US dates and epoch numbers would be rejected row by row: refused up front, quoting a value."""
    with pytest.raises(ValueError, match=f"timestamp column 'ts' is not ISO 8601 \\(e.g. '{stamp}'\\)"):
        infer_columns(pd.DataFrame({"ts": [stamp] * 3, "y": [1, 2, 3]}), "ts")


def test_a_few_bad_timestamps_are_left_to_the_ingestor() -> None:
    stamps = [f"2011-01-01T{h:02d}:00:00" for h in range(24)] * 5 + ["not-a-date"]
    assert infer_columns(pd.DataFrame({"ts": stamps}), "ts") == {"ts": "timestamp"}
