"""`mlnb serve` vs `mlflow models serve --env-manager local`, side by side, on the same model.

Both servers run on 127.0.0.1 (one worker each) and are driven from this one client process with
the same pre-encoded requests, in alternation (A B A B ...): single-row latency (p50, p99) and
1,000-row batch throughput (rows/s). The floors are measured in-process: `model.predict` through
MLflow's pyfunc and the raw scikit-learn estimator. Predictions of both servers are compared.

Two more `mlnb serve` processes share the alternation: one with a challenger taking 10 % of requests
(`--challenger DIR --traffic 10`) and one scoring a shadow copy of every request (`--shadow`); the challenger
is a second model (another C).

Targets (issue "mlnb serve"): single-row p50 within 1.5x of in-process pyfunc predict; batch rows/s
at least 5x MLflow's. Issue "deploy": with `--shadow`, single-row p99 within 1.5x of `mlnb serve` alone.
Issue "monitor": with the live drift gauges (`--drift-reference`), single-row p50 within 1.05x.

Usage: .venv/bin/python benchmarks/serve.py [--rounds 5] [--single 200] [--batches 10] [--model DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serving_fixtures import (
    breast_cancer,
    free_port,
    save_local_model,
    start_mlflow_serve,
    start_mlnb_serve,
    stop,
    wait_ready,
)


def payload(frame, fmt: str = "dataframe_split") -> tuple[bytes, str]:
    if fmt == "csv":
        return frame.to_csv(index=False).encode(), "text/csv"
    if fmt == "dataframe_records":
        return json.dumps({fmt: frame.to_dict(orient="records")}).encode(), "application/json"
    return json.dumps({fmt: {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}).encode(), \
        "application/json"


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, request: tuple[bytes, str]) -> tuple[float, bytes]:
        body, content_type = request
        start = time.perf_counter()
        self.conn.request("POST", "/invocations", body, {"Content-Type": content_type})
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        return elapsed, data


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def floors(model_dir: Path, singles: list, batch) -> dict[str, float]:
    import mlflow.pyfunc
    import mlflow.sklearn

    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    raw = mlflow.sklearn.load_model(str(model_dir))
    for frame in singles[:20]:
        pyfunc.predict(frame)
    one = []
    for frame in singles:
        start = time.perf_counter()
        pyfunc.predict(frame)
        one.append(time.perf_counter() - start)
    raw_times = []
    for _ in range(20):
        start = time.perf_counter()
        raw.predict(batch)
        raw_times.append(time.perf_counter() - start)
    return {"pyfunc_p50": statistics.median(one), "pyfunc_p99": pct(one, 0.99),
            "raw_rows_s": len(batch) / statistics.median(raw_times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=200, help="single-row requests per server per round")
    parser.add_argument("--batches", type=int, default=10, help="1,000-row requests per server per round")
    parser.add_argument("--model", type=Path, help="an MLflow model dir with info.json beside it (default: "
                        "a fresh breast-cancer model)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-serve-"))
    model_dir = args.model or save_local_model(work) / "model"
    X, _ = breast_cancer()
    singles = [X.iloc[[i]] for i in range(args.single)]
    batch = X.sample(1000, replace=True, random_state=0)
    single_bodies = [payload(f) for f in singles]
    formats = ("dataframe_split", "dataframe_records", "csv")
    batch_bodies = {fmt: payload(batch, fmt) for fmt in formats}

    challenger = save_local_model(work / "challenger", C=0.0005) / "model"
    quiet = ("--poll-interval", "0", "--log-level", "warning")
    X_ref, y_ref = breast_cancer()
    X_ref.assign(diagnosis=y_ref).to_parquet(work / "reference.parquet")
    extra = {"mlnb": (), "traffic 10": ("--challenger", str(challenger), "--traffic", "10"),
             "shadow": ("--challenger", str(challenger), "--shadow"),
             "drift gauges": ("--drift-reference", str(work / "reference.parquet"), "--drift-target", "diagnosis")}
    ports = {"mlflow": free_port(), **{name: free_port() for name in extra}}
    procs = {"mlflow": start_mlflow_serve(model_dir, ports["mlflow"], work),
             **{name: start_mlnb_serve(str(model_dir), ports[name], work, *quiet, *args)
                for name, args in extra.items()}}
    try:
        wait_ready(f"http://127.0.0.1:{ports['mlflow']}", procs["mlflow"], path="/ping")
        for name in extra:
            wait_ready(f"http://127.0.0.1:{ports[name]}", procs[name])
        clients = {name: Client(port) for name, port in ports.items()}
        same = all(json.loads(clients["mlflow"].post(b)[1]) == json.loads(clients["mlnb"].post(b)[1])
                   == json.loads(clients["shadow"].post(b)[1]) for b in [*single_bodies[:50], *batch_bodies.values()])
        for client in clients.values():  # warm-up
            for body in single_bodies[:50]:
                client.post(body)
        lat: dict[str, list[float]] = {name: [] for name in clients}
        rate: dict[tuple[str, str], list[float]] = {(n, f): [] for n in clients for f in formats}
        for _ in range(args.rounds):
            for name, client in clients.items():
                lat[name] += [client.post(body)[0] for body in single_bodies]
            for fmt, body in batch_bodies.items():
                for name, client in clients.items():
                    rate[name, fmt] += [1000 / client.post(body)[0] for _ in range(args.batches)]
    finally:
        for proc in procs.values():
            stop(proc)
    floor = floors(model_dir, singles, batch)

    ms = 1000
    p50 = {n: statistics.median(v) for n, v in lat.items()}
    p99 = {n: pct(v, 0.99) for n, v in lat.items()}
    rows = {k: statistics.median(v) for k, v in rate.items()}
    print(f"model: {model_dir} | {args.rounds} rounds x {args.single} single-row + {args.batches} "
          f"1,000-row requests per server, alternating")
    print(f"predictions identical, mlflow = mlnb = mlnb --shadow (50 single rows + a 1,000-row batch in each "
          f"format): {'yes' if same else 'NO'}")
    print(f"{'':28}{'mlflow models serve':>22}{'mlnb serve':>14}{'mlnb / mlflow':>16}{'--traffic 10':>14}"
          f"{'--shadow':>12}{'drift gauges':>14}")

    def line(label: str, values: dict[str, float], fmt: str) -> None:
        print(f"{label:28}{values['mlflow']:22{fmt}}{values['mlnb']:14{fmt}}{values['mlnb'] / values['mlflow']:16.2f}"
              f"{values['traffic 10']:14{fmt}}{values['shadow']:12{fmt}}{values['drift gauges']:14{fmt}}")

    line("single row p50 (ms)", {n: v * ms for n, v in p50.items()}, ".2f")
    line("single row p99 (ms)", {n: v * ms for n, v in p99.items()}, ".2f")
    for fmt in formats:
        line("1,000 rows/s, " + fmt, {n: rows[n, fmt] for n in clients}, ",.0f")
    print(f"floor, in-process pyfunc predict, one row: p50 {floor['pyfunc_p50'] * ms:.2f} ms, "
          f"p99 {floor['pyfunc_p99'] * ms:.2f} ms")
    print(f"floor, raw scikit-learn predict, 1,000 rows: {floor['raw_rows_s']:,.0f} rows/s")
    single_ratio = p50["mlnb"] / floor["pyfunc_p50"]
    batch_ratio = min(rows["mlnb", f] / rows["mlflow", f] for f in formats)
    print(f"target single-row p50 <= 1.5x in-process pyfunc: {single_ratio:.2f}x "
          f"({'met' if single_ratio <= 1.5 else 'MISSED'})")
    print(f"target batch rows/s >= 5x mlflow models serve (worst format): {batch_ratio:.2f}x "
          f"({'met' if batch_ratio >= 5 else 'MISSED'})")
    gauges_ratio = p50["drift gauges"] / p50["mlnb"]
    print(f"target --drift-reference single-row p50 <= 1.05x mlnb serve alone: {gauges_ratio:.2f}x "
          f"({'met' if gauges_ratio <= 1.05 else 'MISSED'})")
    shadow_ratio = p99["shadow"] / p99["mlnb"]
    print(f"target --shadow single-row p99 <= 1.5x mlnb serve alone: {shadow_ratio:.2f}x "
          f"({'met' if shadow_ratio <= 1.5 else 'MISSED'})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
