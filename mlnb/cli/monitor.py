"""``mlnb monitor`` (CLI glue over :mod:`mlnb.services.monitor`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlnb.cli.kit import handle_errors
from mlnb.cli.kit import project as _project
from mlnb.cli.kit import table as _table


@click.command()
@click.option("--log", "logs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A prediction log (mlnb serve --prediction-log; repeatable; its rotated .1 is read too). "
                   "[default: params.yaml monitor.log, predictions.jsonl]")
@click.option("--since", default=None, metavar="TIME", help="Only rows logged since: an ISO time or 30m, 24h, 7d.")
@click.option("--last", type=int, default=None, metavar="N", help="Only the last N logged rows.")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare with this .parquet/.csv instead of the train split the model's build recorded.")
@click.option("--version", "version", default=None, help="The model version to look at. [default: the newest logged]")
@click.option("--variant", default="champion", show_default=True, type=click.Choice(["champion", "challenger"]))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--html", "page", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a report page here (per feature: reference and served shares, scores).")
@click.option("--no-mlflow", is_flag=True, help="Do not log the result as an MLflow run (kind monitor).")
@click.option("--ab", is_flag=True, help="Compare champion and challenger on the labels sent to POST /feedback "
                                         "(accuracy difference and its p-value).")
@handle_errors
def monitor(logs: tuple[Path, ...], since: str | None, last: int | None, reference: Path | None, version: str | None,
            variant: str, as_json: bool, page: Path | None, no_mlflow: bool, ab: bool) -> None:
    """Drift of the served inputs and predictions from the model's training data, and data quality.

    Exit 0: no drift; 1: drift; 2: bad input (a scheduled CI job can act on it)."""
    import json

    from mlnb.core.io import atomic_write
    from mlnb.services import monitor_report
    from mlnb.services.monitor import MonitorRequest, run_monitor, save_last, track

    project = _project()
    result = run_monitor(project, MonitorRequest(tuple(logs), since, last, reference, version, variant, ab=ab))
    data = result.to_dict()
    if page is not None:
        page.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(page, encoding="utf-8") as fh:
            fh.write(monitor_report.render(data))
    if not no_mlflow:
        result.run_id = track(project, result, page)
        data["mlflow_run_id"] = result.run_id
    save_last(project, data)  # what `mlnb report` shows
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _print(data, page)
    sys.exit(1 if result.drift else 0)


def _print(data: dict, page: Path | None) -> None:
    w, ref = data["window"], data["reference"]
    click.echo(f"{w['model_name'] or 'model'} version {w['model_version']} ({w['variant']}): {w['rows']} rows logged "
               f"{w['first'][:19]} .. {w['last'][:19]}; reference {ref['path']} ({ref['source']})")
    if ref.get("note"):
        click.echo(f"  note: {ref['note']}")
    for version, rows in w["other_versions"].items():
        click.echo(f"  left out: {rows} rows of version {version}")
    if w["skipped_lines"]:
        click.echo(f"  skipped: {w['skipped_lines']} unreadable log line(s)")

    def num(x: object) -> str:
        return f"{x:.3f}" if isinstance(x, int | float) else "-"

    rows = [[name, "DRIFT" if f["drifted"] else "ok", f["kind"], num(f.get("psi")), num(f.get("wasserstein")),
             num(f.get("ks")), num(f.get("chi2_p"))] for name, f in [("(predictions)", data["prediction"]),
                                                                   *data["features"].items()] if "kind" in f]
    click.echo(_table(rows, ["column", "verdict", "kind", "psi", "wasserstein", "ks", "chi2 p"]))
    q = data["quality"]
    problems = [f"{n}: {e['missing']} missing, {e.get('out_of_range', 0)} out of range"
                for n, e in q["columns"].items()]
    problems += [f"unknown columns: {', '.join(q['unknown_columns'])}"] if q["unknown_columns"] else []
    problems += [f"missing columns: {', '.join(q['missing_columns'])}"] if q["missing_columns"] else []
    click.echo("data quality: " + ("; ".join(problems) if problems else f"ok ({q['schema'] or 'no schema'})"))
    live = data.get("live")
    if live:
        gate = live["gate"]
        click.echo(f"live quality ({live['matched']} labelled requests; {live['unknown']} labels without a logged "
                   f"prediction, {live['duplicate']} duplicates):")
        for row in live["by_version"]:
            value = row.get(gate["metric"])
            floor = "" if value is None else (f" ({'>=' if value >= gate['threshold'] else 'BELOW'} gate.threshold "
                                              f"{gate['threshold']})")
            click.echo(f"  {row['variant']} v{row['model_version']}: {row['labelled_rows']} rows, accuracy "
                       f"{row['accuracy']:.4f}" + (f", f1 {row['f1']:.4f}" if "f1" in row else "") + floor)
        if "ab" in live:
            a = live["ab"]
            click.echo(f"  challenger v{a['challenger_version']} vs champion v{a['champion_version']}: accuracy "
                       f"{a['accuracy_difference']:+.4f} (p = {a['p_value']:.3g})")
        elif live.get("ab_note"):
            click.echo(f"  --ab: {live['ab_note']}")
    n, k = len(data["features"]), len(data["drifted_features"])
    verdict = "DRIFT" if data["drift"] else "no drift"
    click.echo(f"{verdict}: {k} of {n} features drifted" + (f" ({', '.join(data['drifted_features'])})" if k else "")
               + (", predictions drifted" if data["prediction"].get("drifted") else "")
               + (f"; report {page}" if page else "") + (f"; MLflow run {data['mlflow_run_id']}"
                                                          if data.get("mlflow_run_id") else ""))


COMMANDS = [monitor]
