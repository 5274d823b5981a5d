"""The `aikube` command: run the demo, publish batches, read traces, run the emulator, provision, register datasets."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from aikube.settings import ENV_PREFIX

DEFAULT_DATASET = "examples/bikeshare.yaml"
CLI_PUBLISH_TIMEOUT_S = 15.0  # a person waits at the prompt; a service's retries wait longer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aikube", description="AIkube: the event-driven ML control plane.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole loop on a dataset, as separate processes over Pub/Sub")
    demo.add_argument("--dataset", type=Path, default=Path(DEFAULT_DATASET), help="dataset YAML (default: %(default)s)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: %(default)s)")
    demo.add_argument("--max-batches", type=_positive_int, help="stop after this many batches (at least 1)")
    demo.add_argument(
        "--emulator", type=_host_port, help="host:port of a running Pub/Sub emulator (default: start one)"
    )
    demo.add_argument(
        "--backend",
        choices=["local", "gcp-emulators"],
        default="local",
        help="objects and warehouse: a local folder + DuckDB (default), or the Cloud Storage and BigQuery stand-ins",
    )

    publish = commands.add_parser("publish", help="announce a batch of a registered dataset (dataset.v1.arrived)")
    publish.add_argument("--dataset", required=True)
    publish.add_argument("--batch-id", required=True, help="unique per dataset; re-sending it has one effect")
    what = publish.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", type=Path, help="a CSV/Parquet file: sent inline if small, else by reference")
    what.add_argument("--uri", help="a gs:// or file:// reference to the batch file (claim check)")
    publish.add_argument("--generation", help="object generation of a gs:// uri")
    publish.add_argument("--inline-max-rows", type=int, default=1000)
    publish.add_argument("--project", default=os.environ.get(f"{ENV_PREFIX}PROJECT_ID"), help="Google Cloud project")

    trace = commands.add_parser("trace", help="print a trace as a tree of spans (no id: list the traces)")
    trace.add_argument("trace_id", nargs="?", help="trace id or a unique prefix of it")
    trace.add_argument("--dir", type=Path, default=Path(os.environ.get(f"{ENV_PREFIX}TRACE_DIR", "out/demo/traces")))

    emulator = commands.add_parser("emulator", help="run the Pub/Sub emulator in the foreground until Ctrl-C")
    emulator.add_argument("--port", type=int)

    provision = commands.add_parser("provision", help="create the catalog's topics and subscriptions (emulator)")
    provision.add_argument("--project", default=os.environ.get(f"{ENV_PREFIX}PROJECT_ID"))

    register = commands.add_parser("register", help="register a dataset YAML in the object store ($AIKUBE_STORE)")
    register.add_argument("dataset", type=Path)
    register.add_argument("--store", default=os.environ.get(f"{ENV_PREFIX}STORE"))

    args = parser.parse_args(argv)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except (ValueError, LookupError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"aikube {args.command}: {exc}", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    from aikube.demo import run_demo

    run_demo(args.dataset, args.out, max_batches=args.max_batches, emulator_host=args.emulator, backend=args.backend)
    return 0


def _publish(args: argparse.Namespace) -> int:
    from aikube.bus import PubSubBus
    from aikube.catalog import Catalog
    from aikube.datasets import read_table
    from aikube.sdk import DataSource
    from aikube.settings import TraceSettings, load_settings
    from aikube.telemetry import setup_tracing, shutdown_tracing

    project = _required(args.project, "--project or AIKUBE_PROJECT_ID")
    tracing = load_settings(TraceSettings)  # before reading the file: a bad setting fails at once
    batch: dict[str, object] = {}
    if args.file:
        frame = read_table(args.file)
        if len(frame) <= args.inline_max_rows:
            batch["records"] = frame
        else:
            batch["uri"] = args.file.resolve().as_uri()
    else:
        batch["uri"] = args.uri
        if args.generation:
            batch["generation"] = args.generation
    catalog = Catalog.load()
    source = DataSource(
        project, catalog=catalog, bus=PubSubBus(project, catalog, publish_timeout_s=CLI_PUBLISH_TIMEOUT_S)
    )
    # The publish span is the root of the batch's trace, exported like the services' (AIKUBE_TRACE_*); with the
    # default exporter `none` it is not recorded, but the printed id is still the one the services continue.
    setup_tracing("aikube-publish", exporter=tracing.trace_exporter, trace_dir=tracing.trace_dir)
    try:
        published = source.publish_batch(args.dataset, args.batch_id, **batch)
    finally:
        source.close()
        shutdown_tracing()
    print(f"published {args.dataset}/{args.batch_id}: event {published.event_id}, trace {published.trace_id}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from aikube.tracefile import load_spans, render_trace, trace_command, traces

    if not args.dir.is_dir():
        raise LookupError(
            f"no trace folder {args.dir}: give --dir (or AIKUBE_TRACE_DIR) the folder the services write spans to"
            " with AIKUBE_TRACE_EXPORTER=file"
        )
    if args.trace_id is None:
        print(trace_command(None, args.dir))
        return 0
    spans = load_spans(args.dir)
    prefix = args.trace_id.strip().lower()
    matches = [summary.trace_id for summary in traces(spans) if summary.trace_id.startswith(prefix)]
    if not matches:
        raise LookupError(
            f"no trace starting with {args.trace_id!r} in {args.dir}; `aikube trace --dir {args.dir}` lists them"
        )
    if len(matches) > 1:
        print(trace_command(args.trace_id, args.dir), file=sys.stderr)  # the matching traces, to pick from
        return 1
    print(render_trace(spans, matches[0]))
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from aikube.emulator import PubSubEmulator

    with PubSubEmulator(port=args.port) as emulator:
        print(f"export PUBSUB_EMULATOR_HOST={emulator.host}   # pid {emulator.pid}; Ctrl-C stops it", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _provision(args: argparse.Namespace) -> int:
    from aikube.bus import PubSubBus
    from aikube.catalog import Catalog

    bus = PubSubBus(_required(args.project, "--project or AIKUBE_PROJECT_ID"), Catalog.load())
    subscriptions = bus.provision()
    bus.close()
    print(f"provisioned {len(bus.catalog)} topics and {len(subscriptions)} subscriptions with dead-letter topics")
    return 0


def _register(args: argparse.Namespace) -> int:
    from aikube.adapters import open_store
    from aikube.datasets import DatasetCatalog, DatasetSpec, infer_columns, read_table

    spec = DatasetSpec.from_yaml(args.dataset)
    if not spec.columns:
        if spec.path is None:
            raise ValueError(f"{args.dataset}: declare `columns` or give `path` so they can be inferred")
        spec = spec.with_columns(infer_columns(read_table(spec.path), spec.timestamp))
    DatasetCatalog(open_store(_required(args.store, "--store or AIKUBE_STORE"))).register(spec)
    print(f"registered {spec.name}: {len(spec.columns)} columns, features {spec.feature_columns}")
    return 0


def _required(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"missing {what}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _host_port(text: str) -> str:
    """argparse type: host:port with a port number, as PUBSUB_EMULATOR_HOST takes it."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected host:port, e.g. 127.0.0.1:8085, not {text!r}")
    return text


COMMANDS = {
    "demo": _demo,
    "publish": _publish,
    "trace": _trace,
    "emulator": _emulator,
    "provision": _provision,
    "register": _register,
}

if __name__ == "__main__":
    sys.exit(main())
