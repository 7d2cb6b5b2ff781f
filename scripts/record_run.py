"""Record a run for the docs: python scripts/record_run.py runs/default-1202 --name default-1202 --commit 77f1d94

RUN is a run folder (its eval.json; its options.json, kept as the record's train_options; record.json, which
the trainer writes) or an evaluate.py --json file. The log beside it (RUN.log, or --log) gives what
`/usr/bin/time -v` and the trainer printed: the command, wall time, peak RSS, steps, last loss and training
seconds (record.json's where the log has none). Writes docs/records/NAME.json; then
`python scripts/results_tables.py` rewrites the tables that quote it."""
import argparse
import datetime
import json
import sys
from pathlib import Path

from unio.train.records import problems, time_log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder with eval.json, or an evaluate.py --json file")
    p.add_argument("--name", required=True, help="the record's name: docs/records/NAME.json")
    p.add_argument("--log", default=None, help="the run's log (default: RUN.log where it exists)")
    p.add_argument("--command", default=None, help="the command (default: the log's or record.json's)")
    p.add_argument("--commit", default=None, help="the commit the run ran at (default: record.json's, else none)")
    p.add_argument("--machine", default=None, help="the machine (default: record.json's, else none)")
    p.add_argument("--date", default=None, help="YYYY-MM-DD (default: record.json's, else the evaluation's mtime)")
    p.add_argument("--note", default=None, help="anything the record should say about itself")
    p.add_argument("--out", default="docs/records", help="the records folder")
    return p


def evaluation_of(run: Path) -> tuple[dict, dict, dict, Path]:
    """(metrics, baselines, eval.json's split and n, the file) of a run folder or an evaluate.py JSON."""
    path = run / "eval.json" if run.is_dir() else run
    evaluation = json.loads(path.read_text())
    if "results" in evaluation:                       # evaluate.py: {task: metrics} or {task: {baseline: metrics}}
        results = {t: r for t, r in evaluation["results"].items() if r}
        nested = all(isinstance(v, dict) for r in results.values() for v in r.values())
        metrics, baselines = ({}, results) if nested else (results, {})
    else:
        metrics, baselines = evaluation["model"], evaluation.get("baselines", {})
    return metrics, baselines, {"split": evaluation.get("split"), "n": evaluation.get("n")}, path


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    run = Path(args.run)
    metrics, baselines, split_n, path = evaluation_of(run)
    written = json.loads((run / "record.json").read_text()) if (run / "record.json").exists() else {}
    log = Path(args.log) if args.log else Path(str(run).removesuffix(".json") + ".log")
    logged = time_log(log.read_text(errors="replace")) if log.exists() else {}
    date = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d")
    record = {"name": args.name, "command": args.command or logged.get("command") or written.get("command"),
              "commit": args.commit or written.get("commit"), "date": args.date or written.get("date") or date,
              "machine": args.machine or written.get("machine"),
              "wall_s": logged.get("wall_s", written.get("wall_s")), **split_n,
              **{k: logged.get(k, written.get(k)) for k in ("train_s", "run_s", "steps", "last_loss", "peak_rss_mb")
                 if k in logged or k in written},
              "metrics": metrics, "baselines": baselines,
              "source": "eval.json" if path.name == "eval.json" else "evaluate.py --json"}
    if (run / "options.json").is_file():      # what was trained: specialists.py makes a run's specialists from it
        record["train_options"] = json.loads((run / "options.json").read_text())
    if args.note:
        record["note"] = args.note
    if bad := problems(record):
        raise SystemExit(f"not recorded: {'; '.join(bad)}")
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
