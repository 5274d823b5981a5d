import sys; sys.path.insert(0, "/work/main/tests/integration")
from test_bus_emulator import start_service, arrived, recording_router, Router, ARRIVED, WAIT_S, threading, queue, time, INGESTOR_SUB  # noqa

def test_dbg(pubsub_bus, catalog, fast_policy, start_service):
    published = [f"b-{i}" for i in range(6)]
    q = queue.Queue()
    first, d1 = start_service("ingestor", recording_router(ARRIVED, q), max_messages=1)
    pubsub_bus.publish_all(arrived(catalog, b, dataset=f"ds{i}") for i, b in enumerate(published))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        try:
            print("got", q.get(timeout=1), round(time.monotonic() - t0, 2))
        except queue.Empty:
            pass
