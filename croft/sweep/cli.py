"""``croft-sweep`` / ``python -m croft.sweep``: run, follow and tabulate the grids of ``configs/sweeps/``.

    croft-sweep run GRID [GRID ...] [--root DATA] [--output OUTPUT] [--backbone B] [--pretrained P]
                    [--set KEY VALUE]... [--only KEY=VALUE[,VALUE]]... [--retry-failed]
                    [--launcher local|submitit] [--workers N] [--gpus 0,1,2,3]
                    [--submitit-local] [--partition P] [--gpus-per-job G] [--cpus-per-job C] [--mem-gb M]
                    [--time-min T] [--array-parallelism A] [--runs-per-job R] [--no-wait]
    croft-sweep status GRID ...       counts per state (done, running, queued, failed, incomplete, pending) and per
                                      axis, and the grids' run folders with other settings
    croft-sweep list GRID ...         one line per run: state and folder (--commands: the croft-train command)
    croft-sweep precompute GRID ...   encode every image view the runs will read (feature cache), sharded
    croft-sweep collect GRID ...      the results table of the grids' runs (tools/collect_results.py)

Environment defaults (the ``scripts/*/run_setup*.sh`` wrappers): ``DATA`` (--root), ``OUTPUT`` (--output,
default ``output``), ``BACKBONE``, ``PRETRAINED``, ``EXTRA_OPTS`` (KEY VALUE pairs for every run),
``LAUNCHER``, ``GPUS``, ``WORKERS``. Exit status: 0 when every run is done or skipped, 1 when a run
failed, 2 for a bad grid, override or filter (one ``error:`` line). docs/sweeps.md has the details.
"""
import argparse
import os
import sys
import time
from collections import Counter, OrderedDict

from . import state as st
from .grid import TRAIN_STAGE, GridError, load_grid

RUNNER_FN = "croft.sweep.runner:run_payload"
PRECOMPUTE_FN = "croft.sweep.precompute:run_payload"


def _env(name, default=""):
    value = os.environ.get(name, "")
    return value if value.strip() else default


def _common(p):
    p.add_argument("grids", nargs="+", metavar="GRID",
                   help="grid YAML files, or names under configs/sweeps (e.g. croft_setup2_pacs)")
    p.add_argument("--output", default=_env("OUTPUT", "output"), help="output root (env OUTPUT; default: output)")
    p.add_argument("--root", default=_env("DATA"), help="dataset root, DATASET.ROOT (env DATA)")
    p.add_argument("--backbone", default=_env("BACKBONE"), help="MODEL.BACKBONE.NAME for every run (env BACKBONE)")
    p.add_argument("--pretrained", default=_env("PRETRAINED"),
                   help="MODEL.BACKBONE.PRETRAINED for every run (env PRETRAINED)")
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), dest="sets",
                   help="override KEY for every run (repeatable); an axis key takes this value instead of its list")
    p.add_argument("--opts", default=_env("EXTRA_OPTS"),
                   help="KEY VALUE pairs in one string for every run, before --set (env EXTRA_OPTS)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="keep the runs whose axis KEY (key, label, config, domain or stage) has VALUE (comma: any "
                        "of several); repeat for several keys, e.g. --only seed=1 --only TEST_ENV=test_on_sketch.json")


def _launch_args(p):
    p.add_argument("--launcher", default=_env("LAUNCHER", "local"), choices=["local", "submitit"],
                   help="local: this process or --workers processes; submitit: SLURM job arrays (env LAUNCHER)")
    p.add_argument("--workers", type=int, default=None,
                   help="local: worker processes sharing the queue (env WORKERS; default 1, or one per --gpus)")
    p.add_argument("--gpus", default=_env("GPUS"),
                   help="local: GPU ids, one worker per GPU via CUDA_VISIBLE_DEVICES (env GPUS), e.g. 0,1,2,3")
    p.add_argument("--verbose", action="store_true", help="show each run's own console output")
    s = p.add_argument_group("submitit (SLURM); defaults from the grid's slurm: section")
    s.add_argument("--submitit-local", action="store_true",
                   help="run the submitit jobs as local processes (submitit's LocalExecutor), e.g. to test")
    s.add_argument("--partition", default=None)
    s.add_argument("--gpus-per-job", type=int, default=None, help="GPUs per job (default 1; 0 with --submitit-local)")
    s.add_argument("--cpus-per-job", type=int, default=None)
    s.add_argument("--mem-gb", type=int, default=None)
    s.add_argument("--time-min", type=int, default=None, help="time limit of a job in minutes (default 1440)")
    s.add_argument("--array-parallelism", type=int, default=None, help="jobs of the array running at once")
    s.add_argument("--runs-per-job", type=int, default=None, help="runs executed one after another in one job")
    s.add_argument("--account", default=None)
    s.add_argument("--qos", default=None)
    s.add_argument("--constraint", default=None)
    s.add_argument("--no-wait", action="store_true", help="submit and return (follow with croft-sweep status)")


def _table_args(p):
    p.add_argument("--format", default="md", choices=["md", "csv", "latex"], help="table format")
    p.add_argument("--scores", default=None, help="open-set scores of the table (default energy; 'all')")
    p.add_argument("--wide", action="store_true", help="the full table (every score, hyper-parameters spelled out)")
    p.add_argument("--select", choices=["val"], default=None, help="best setting by validation accuracy")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="croft-sweep",
        description="Run, follow and tabulate the grids of configs/sweeps/ (docs/sweeps.md). Environment defaults: "
                    "DATA, OUTPUT, BACKBONE, PRETRAINED, EXTRA_OPTS, LAUNCHER, GPUS, WORKERS.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("run", help="run every run of the grids that is not done, then print the table")
    _common(p)
    _launch_args(p)
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again (otherwise skipped with a note)")
    p.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    p.add_argument("--no-table", action="store_true", help="do not print the results table at the end")
    _table_args(p)
    p = sub.add_parser("status", help="counts per state and per grid axis")
    _common(p)
    p.add_argument("--verbose", action="store_true", help="also list the failed and incomplete runs")
    p = sub.add_parser("list", help="one line per run: state and folder")
    _common(p)
    p.add_argument("--commands", action="store_true", help="print each run's croft-train command line")
    p = sub.add_parser("precompute", help="encode every image view the grids' runs will read (feature cache)")
    _common(p)
    _launch_args(p)
    p.add_argument("--all", action="store_true", help="also the data settings of runs that are done")
    p = sub.add_parser("collect", help="the results table of the grids' runs")
    _common(p)
    _table_args(p)
    return parser


# ---------------------------------------------------------------------------------------------
# helpers

def make_plan(args, need_root=False):
    from .identity import plan

    if need_root and not args.root:
        raise GridError("set the dataset root: --root DIR or DATA=DIR (the folder that holds PACS/, VLCS/, dtd/, ...)")
    grids = [load_grid(g) for g in args.grids]
    return plan(grids, args.output, root=os.path.abspath(args.root) if args.root else "", backbone=args.backbone,
                pretrained=args.pretrained, sets=args.sets, filters=args.only, extra_opts=args.opts)


def _fmt_s(seconds):
    seconds = float(seconds or 0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _say(text, file=None):
    print(text, file=file or sys.stdout, flush=True)


def _warn(text):
    _say(f"warning: {text}", file=sys.stderr)


def make_launcher(args, grids, output):
    from .launchers import LocalLauncher, SubmititLauncher

    if args.launcher not in ("local", "submitit"):
        raise GridError(f"--launcher / LAUNCHER {args.launcher!r}: choose local or submitit")
    if args.launcher == "local":
        workers = args.workers if args.workers is not None else int(_env("WORKERS", "0") or 0)
        return LocalLauncher(workers=workers or None, gpus=args.gpus or None)
    slurm = {}
    for grid in grids:  # the first grid that sets a value wins
        for k, v in grid.slurm.items():
            slurm.setdefault(k, v)
    cli = {"partition": args.partition, "gpus_per_node": args.gpus_per_job, "cpus_per_task": args.cpus_per_job,
           "mem_gb": args.mem_gb, "timeout_min": args.time_min, "array_parallelism": args.array_parallelism,
           "account": args.account, "qos": args.qos, "constraint": args.constraint}
    params = dict(slurm)
    params.update({k: v for k, v in cli.items() if v is not None})
    runs_per_job = args.runs_per_job or params.pop("runs_per_job", 1)
    params.pop("runs_per_job", None)
    return SubmititLauncher(os.path.join(os.path.abspath(output), ".submitit"), params, runs_per_job=runs_per_job,
                            local=args.submitit_local, wait=not args.no_wait)


class Progress:
    """A tqdm bar over runs (ETA) and one line per finished run."""

    def __init__(self, total, what="run"):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit=what, dynamic_ncols=True, file=sys.stderr, leave=False,
                        disable=None if total else True)
        self.counts = Counter()
        self.started = time.time()
        self.failures = []

    def line(self, text):
        self.bar.write(text, file=sys.stdout)
        sys.stdout.flush()

    def close(self):
        self.bar.close()


def _outcome_line(o):
    acc = f"acc {o['accuracy']:6.2f}" if isinstance(o.get("accuracy"), (int, float)) else " " * 10
    text = f"{o['state']:<8} {_fmt_s(o.get('seconds')):>7}  {acc}  {o['key']}"
    if o["state"] != st.DONE and o.get("message"):
        text += f"\n         {o['message']}"
    return text


# ---------------------------------------------------------------------------------------------
# run

def select_runs(plan, retry_failed):
    """``(chains to run, notes, states)``: done and queued runs are skipped; failed ones unless retried;
    a stage waits for its training run."""
    runs = plan.runs
    active = st.active_jobs(runs, warn=_warn)
    states = {r.key: st.run_state(r, active) for r in runs}
    counts = Counter(s for s, _ in states.values())
    to_run, blocked = [], 0
    for chain in plan.chains:
        keep = []
        for spec in chain:
            state, _ = states[spec.key]
            if state in (st.DONE, st.RUNNING, st.QUEUED) or (state == st.FAILED and not retry_failed):
                continue
            if spec.parent_key is not None and not any(s.key == spec.parent_key for s in keep):
                parent_state = states.get(spec.parent_key, (None, ""))[0]
                if parent_state is None:  # filtered out of the plan: look at its folder
                    from .runner import _training_fingerprint
                    parent_state = st.DONE if _training_fingerprint(spec.parent_dir) == spec.training_fingerprint \
                        else st.PENDING
                if parent_state != st.DONE:
                    blocked += 1
                    continue
            keep.append(spec)
        if keep:
            to_run.append(keep)
    notes = []
    parts = [f"{counts[s]} {s}" for s in st.STATES if counts[s]]
    notes.append(f"{len(runs)} run(s) in the grid(s): {', '.join(parts) or 'none'}")
    if counts[st.FAILED] and not retry_failed:
        notes.append(f"{counts[st.FAILED]} failed run(s) skipped (their error.txt says why; --retry-failed to run "
                     "them again)")
    if counts[st.RUNNING]:
        example = next(note for state, note in states.values() if state == st.RUNNING)
        notes.append(f"{counts[st.RUNNING]} run(s) running in another process (e.g. {example}): left to it")
    if counts[st.QUEUED]:
        notes.append(f"{counts[st.QUEUED]} run(s) already queued in live submitit jobs: not submitted again")
    if blocked:
        notes.append(f"{blocked} stage run(s) wait for a training run that is not done")
    return to_run, notes, states


def _lost_chain(received, progress):
    def lost(payload, message):
        for spec in [s for chain in payload["chains"] for s in chain]:
            if spec["key"] in received:
                continue
            st.write_error(spec["out_dir"], message)
            outcome = {"key": spec["key"], "state": st.FAILED, "seconds": 0.0, "message": message,
                       "accuracy": None, "stage": spec["stage"], "out_dir": spec["out_dir"]}
            received[spec["key"]] = outcome
            progress.counts[st.FAILED] += 1
            progress.failures.append(outcome)
            progress.line(_outcome_line(outcome))
            progress.bar.update(1)
    return lost


def cmd_run(args):
    from .launchers import SubmititLauncher, job_folder_note

    plan = make_plan(args, need_root=not args.dry_run)
    for note in plan.notes:
        _say(f"note: {note}")
    chains, notes, _ = select_runs(plan, args.retry_failed)
    for note in notes:
        _say(note)
    total = sum(len(c) for c in chains)
    launcher = make_launcher(args, plan.grids, args.output)
    if not args.dry_run:
        for spec in plan.with_stages:  # the table finds a training run's stages through its stage.json
            st.write_stage_file(spec)
    if args.dry_run:
        for chain in chains:
            for spec in chain:
                _say(f"would run: {spec.key}")
        _say(f"{total} run(s) would run ({launcher.describe()})")
        return 0
    rc = 0
    if total:
        _say(f"running {total} run(s): {launcher.describe()}")
        rc = _execute(args, launcher, chains, total)
    else:
        _say("nothing to run")
    if isinstance(launcher, SubmititLauncher) and not launcher.wait and total:
        _say(job_folder_note(launcher))
        return rc
    if not args.no_table:
        _print_table(args, plan)
    if rc == 0 and any(st.run_state(r)[0] == st.FAILED for r in plan.runs):
        rc = 1  # failed runs that were skipped (not retried) still make the sweep unfinished
    return rc


def _execute(args, launcher, chains, total):
    from .launchers import SubmititLauncher

    progress = Progress(total)
    received = OrderedDict()

    def on_result(outcome):
        if outcome["key"] in received:
            return
        received[outcome["key"]] = outcome
        progress.counts[outcome["state"]] += 1
        if outcome["state"] == st.FAILED:
            progress.failures.append(outcome)
        progress.line(_outcome_line(outcome))
        progress.bar.update(1)

    payloads = [{"chains": [[s.to_dict() for s in chain]], "verbose": args.verbose} for chain in chains]
    interrupted = False
    try:
        if isinstance(launcher, SubmititLauncher):
            if not _run_submitit(launcher, payloads, on_result, progress, received):
                return 0
        else:
            launcher.run(RUNNER_FN, payloads, on_result, lost=_lost_chain(received, progress))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    c = progress.counts
    elapsed = _fmt_s(time.time() - progress.started)
    missing = total - len(received)
    summary = (f"finished in {elapsed}: {c[st.DONE]} done, {c[st.FAILED]} failed"
               + (f", {c[st.RUNNING]} left to another process running them" if c[st.RUNNING] else "")
               + (f", {c['skipped']} skipped (training run not done)" if c["skipped"] else "")
               + (f", {missing} not run" if missing else ""))
    _say(("interrupted; " if interrupted else "") + summary)
    for o in progress.failures:
        _say(f"  failed: {o['key']}: {o['message']}")
    if interrupted:
        if isinstance(launcher, SubmititLauncher):
            _say("the submitted jobs keep running; follow them with croft-sweep status")
        return 130
    return 1 if c[st.FAILED] or c["skipped"] or missing else 0


def _run_submitit(launcher, payloads, on_result, progress, received):
    """Submit the chains as one job array; wait for them unless --no-wait. Returns whether it waited."""
    job_payloads = launcher.pack(payloads, lambda p: sum(len(c) for c in p["chains"]))
    job_payloads = [{"chains": [c for p in group for c in p["chains"]], "verbose": group[0]["verbose"]}
                    for group in job_payloads]
    jobs = launcher.submit(RUNNER_FN, job_payloads)
    for job, payload in zip(jobs, job_payloads):
        for chain in payload["chains"]:
            for spec in chain:
                st.write_submitted(spec["out_dir"], job.job_id, launcher.folder, launcher.cluster())
    ids = [str(j.job_id) for j in jobs]
    progress.line(f"submitted {len(jobs)} job(s): {ids[0]}{' ... ' + ids[-1] if len(ids) > 1 else ''} "
                  f"(logs: {launcher.folder}/<job id>/)")
    if not launcher.wait:
        return False

    def on_job_done(index, results, error):
        for chain in job_payloads[index]["chains"]:
            for d in chain:
                st.clear_submitted(d["out_dir"])  # the job is over: its runs are no longer queued
        for outcome in results or []:
            on_result(outcome)
        if error:
            from .identity import RunSpec

            for chain in job_payloads[index]["chains"]:
                for d in chain:
                    if d["key"] in received:
                        continue
                    spec = RunSpec.from_dict(d)
                    done, _ = st.read_done(spec)
                    if done is not None:
                        on_result({"key": spec.key, "state": st.DONE, "seconds": 0.0, "message": "",
                                   "accuracy": st.headline(done), "stage": spec.stage, "out_dir": spec.out_dir})
                        continue
                    message = st.read_error(spec.out_dir) or error
                    st.write_error(spec.out_dir, message)
                    on_result({"key": spec.key, "state": st.FAILED, "seconds": 0.0, "message": message,
                               "accuracy": None, "stage": spec.stage, "out_dir": spec.out_dir})

    launcher.wait_for(jobs, on_job_done)
    return True


def _print_table(args, plan):
    from ..results.collect import collect, format_table, notes_lines

    roots = [r for r in plan.roots if os.path.isdir(r)]
    if not roots:
        _say("no results yet")
        return
    root = os.path.commonpath(roots)
    rows = collect(root, select=getattr(args, "select", None))
    scores = [s.strip() for s in args.scores.split(",")] if getattr(args, "scores", None) else None
    _say(f"\nresults under {root}:\n")
    text = format_table(rows, getattr(args, "format", "md"), scores=scores, wide=getattr(args, "wide", False))
    sys.stdout.write(text)
    for path, reason in rows.malformed:
        _say(f"skipped malformed {path}: {reason}", file=sys.stderr)
    for line in rows.refused:
        _say(f"warning: {line}", file=sys.stderr)
    if getattr(args, "format", "md") == "csv":  # the CSV is one table; its notes go to stderr
        for line in notes_lines(rows, scores=scores, wide=getattr(args, "wide", False)):
            _say(line, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# status, list, collect

def cmd_status(args):
    plan = make_plan(args)
    for note in plan.notes:
        _say(f"note: {note}")
    active = st.active_jobs(plan.runs, warn=_warn)
    states = {r.key: st.run_state(r, active) for r in plan.runs}
    for grid, root in zip(plan.grids, plan.roots):
        runs = [r for r in plan.runs if r.grid == grid.name]
        _say(f"{grid.name} ({grid.source}): {len(runs)} run(s) under {root}")
        if not runs:
            continue
        used = [s for s in st.STATES if any(states[r.key][0] == s for r in runs)]
        stages = list(OrderedDict.fromkeys(r.stage for r in runs))
        header = ["", *used, "total"]
        table = []
        for stage in stages:
            c = Counter(states[r.key][0] for r in runs if r.stage == stage)
            table.append([f"stage {stage}", *[str(c[s]) for s in used], str(sum(c.values()))])
        c = Counter(states[r.key][0] for r in runs)
        if len(stages) > 1:
            table.append(["all", *[str(c[s]) for s in used], str(sum(c.values()))])
        axes = OrderedDict()
        for r in runs:
            for k, v in r.axes.items():
                axes.setdefault(k, OrderedDict()).setdefault(str(v), Counter())[states[r.key][0]] += 1
        for k, values in axes.items():
            if len(values) < 2:
                continue
            for v, c in values.items():
                table.append([f"{k}={v}", *[str(c[s]) for s in used], str(sum(c.values()))])
        widths = [max(len(row[i]) for row in [header] + table) for i in range(len(header))]
        for row in [header] + table:
            _say("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                                  enumerate(zip(row, widths))))
        if args.verbose:
            for r in runs:
                state, note = states[r.key]
                if state in (st.FAILED, st.INCOMPLETE, st.QUEUED, st.RUNNING):
                    _say(f"  {state}: {r.key}" + (f": {note}" if note else ""))
        else:
            failed = [r for r in runs if states[r.key][0] == st.FAILED]
            if failed:
                _say(f"  e.g. failed: {failed[0].key}: {states[failed[0].key][1]} (--verbose lists them all)")
    _report_other_runs(args, plan)
    return 0


def _report_other_runs(args, plan, listing=False):
    from .other_runs import summary_lines

    for line in summary_lines(plan, args.output, listing=listing):
        _say(line)


def cmd_list(args):
    plan = make_plan(args)
    for note in plan.notes:
        _say(f"note: {note}")
    active = st.active_jobs(plan.runs, warn=_warn)
    for r in plan.runs:
        state, note = st.run_state(r, active)
        _say(f"{state:<10} {r.key}" + (f"  ({note})" if note and state != st.DONE else ""))
        if args.commands:
            _say(f"           {r.command()}")
    _say(f"{len(plan.runs)} run(s)")
    _report_other_runs(args, plan, listing=True)
    return 0


def cmd_collect(args):
    plan = make_plan(args)
    _print_table(args, plan)
    return 0


# ---------------------------------------------------------------------------------------------
# precompute

def cmd_precompute(args):
    from .launchers import SubmititLauncher
    from .precompute import tasks_of

    plan = make_plan(args, need_root=True)
    tasks = tasks_of(plan, only_missing=not args.all)
    launcher = make_launcher(args, plan.grids, args.output)
    if not tasks:
        _say(f"0 data setting(s) to precompute: {_nothing_to_precompute(plan)}")
        return 0
    _say(f"{len(tasks)} data setting(s) to precompute for {sum(t['runs'] for t in tasks)} run(s): "
         f"{launcher.describe()}")
    progress = Progress(len(tasks), what="setting")
    failed = []

    def on_result(result):
        progress.bar.update(1)
        stats = result.get("stats") or {}
        detail = (f"{stats.get('feature_cache_misses', 0)} encoded, {stats.get('feature_cache_hits', 0)} from cache"
                  if result["state"] == "done" else result["message"])
        detail = stats.get("skipped", detail)
        if result["state"] != "done":
            failed.append(result)
        progress.line(f"{result['state']:<8} {_fmt_s(result.get('seconds')):>7}  {result['key']} "
                      f"({result['runs']} run(s)): {detail}")

    units = [{"tasks": [t]} for t in tasks]
    try:
        if isinstance(launcher, SubmititLauncher):
            # one task per job unless --runs-per-job groups them
            groups = launcher.pack(units, lambda u: 1)
            jobs = launcher.submit(PRECOMPUTE_FN, [{"tasks": [t for u in g for t in u["tasks"]]} for g in groups],
                                   name="croft-precompute")
            progress.line(f"submitted {len(jobs)} job(s) (logs: {launcher.folder}/<job id>/)")
            if launcher.wait:
                def on_job_done(index, results, error):
                    for r in results or []:
                        on_result(r)
                    if error:
                        on_result({"key": f"job {jobs[index].job_id}", "runs": 0, "state": "failed",
                                   "message": error, "seconds": 0.0})
                launcher.wait_for(jobs, on_job_done)
        else:
            def lost(payload, message):
                for t in payload["tasks"]:
                    on_result({"key": t["key"], "runs": t["runs"], "state": "failed", "message": message,
                               "seconds": 0.0})
            launcher.run(PRECOMPUTE_FN, units, on_result, lost=lost)
    finally:
        progress.close()
    _say(f"precompute finished in {_fmt_s(time.time() - progress.started)}: "
         f"{len(tasks) - len(failed)} done, {len(failed)} failed")
    return 1 if failed else 0


def _nothing_to_precompute(plan):
    training = [r for r in plan.runs if r.parent_key is None]
    if not training:
        return ("the selection holds evaluation stages only, which read the image views of their training runs "
                "(select those too, e.g. drop --only stage=...)")
    return (f"all {len(training)} training run(s) of the selection are done (--all precomputes their data "
            "settings anyway, e.g. for a new CACHE.DIR)")


# ---------------------------------------------------------------------------------------------

COMMANDS = {"run": cmd_run, "status": cmd_status, "list": cmd_list, "collect": cmd_collect,
            "precompute": cmd_precompute}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..config import ConfigError
    from .launchers import LauncherError
    from ..utils.cli import report_error

    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. croft-sweep list ... | head
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:
        return report_error(exc, usage=(GridError, ConfigError),
                            expected=(LauncherError, OSError, ValueError, RuntimeError))


__all__ = ["main", "build_parser", "TRAIN_STAGE"]
