"""Where the runs execute: ``local`` (this process, or N worker processes) or ``submitit`` (SLURM job arrays).

Every launcher executes *units* (a training run with its stages, or a precompute task) with a
payload function ``fn(payload, emit)`` named as ``"module:function"`` (importable in a fresh process,
no torch at import). ``emit(result dict)`` reports each finished item; the launcher passes results
to ``on_result`` as they arrive.

- :class:`LocalLauncher` with one worker and no ``gpus``: in this process.
- :class:`LocalLauncher` with ``workers > 1`` or ``gpus``: that many processes (``spawn``), sharing one
  queue of units; with ``gpus="0,1,2,3"`` worker *i* owns GPU ``gpus[i % n]`` through
  ``CUDA_VISIBLE_DEVICES``, set before the worker imports torch.
- :class:`SubmititLauncher`: units packed into jobs of about ``runs_per_job`` items, submitted as one
  job array (SLURM through submitit, or submitit's ``LocalExecutor`` with ``local=True``: real jobs as
  local processes). It waits for the jobs unless ``wait=False``.
"""
import importlib
import multiprocessing
import os
import queue as queue_module
import time


def resolve(fn_path):
    module, _, name = fn_path.partition(":")
    return getattr(importlib.import_module(module), name)


class LauncherError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# local

def _worker_main(worker_id, gpu, fn_path, tasks, results):
    """A worker process: set its GPU before anything imports torch, then run units until the sentinel."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    try:
        fn = resolve(fn_path)
        while True:
            unit = tasks.get()
            if unit is None:
                break
            index, payload = unit
            results.put(("start", worker_id, index))
            fn(payload, lambda result: results.put(("result", worker_id, result)))
            results.put(("finished", worker_id, index))
    except KeyboardInterrupt:
        pass
    finally:
        results.put(("exit", worker_id, None))


class LocalLauncher:
    name = "local"

    def __init__(self, workers=1, gpus=None):
        self.gpus = [g.strip() for g in str(gpus).split(",") if g.strip()] if gpus else []
        self.workers = max(1, int(workers or (len(self.gpus) or 1)))

    def describe(self):
        if self.workers == 1 and not self.gpus:
            return "local, in this process"
        gpus = f", GPUs {','.join(self.gpus)}" if self.gpus else ""
        return f"local, {self.workers} worker process(es){gpus}"

    def run(self, fn_path, units, on_result, lost=None):
        """Execute ``units`` (payloads); ``lost(payload, message)`` is told about units a dead worker dropped."""
        if not units:
            return
        if self.workers == 1 and not self.gpus:
            fn = resolve(fn_path)
            for payload in units:
                fn(payload, on_result)
            return
        self._run_processes(fn_path, units, on_result, lost)

    def _run_processes(self, fn_path, units, on_result, lost):
        ctx = multiprocessing.get_context("spawn")
        tasks, results = ctx.Queue(), ctx.Queue()
        for index, payload in enumerate(units):
            tasks.put((index, payload))
        n = min(self.workers, len(units))
        for _ in range(n):
            tasks.put(None)
        procs = {}
        for i in range(n):
            gpu = self.gpus[i % len(self.gpus)] if self.gpus else None
            p = ctx.Process(target=_worker_main, args=(i, gpu, fn_path, tasks, results), daemon=True,
                            name=f"croft-sweep-worker-{i}")
            p.start()
            procs[i] = p
        current = {}
        exited = set()
        try:
            while len(exited) < n:
                try:
                    kind, worker, value = results.get(timeout=1.0)
                except queue_module.Empty:
                    for i, p in procs.items():
                        if i not in exited and not p.is_alive():
                            # died without saying goodbye (killed, segfault, out of memory)
                            exited.add(i)
                            if i in current and lost is not None:
                                lost(units[current.pop(i)], f"error: worker process died (exit code {p.exitcode})")
                    continue
                if kind == "start":
                    current[worker] = value
                elif kind == "finished":
                    current.pop(worker, None)
                elif kind == "result":
                    on_result(value)
                elif kind == "exit":
                    exited.add(worker)
                    if worker in current and lost is not None:
                        lost(units[current.pop(worker)], "error: worker process stopped during the unit")
        finally:
            for p in procs.values():
                p.join(timeout=5)
                if p.is_alive():
                    p.terminate()
        # Units no worker took (every worker died): report them as lost.
        while True:
            try:
                unit = tasks.get_nowait()
            except (queue_module.Empty, OSError, ValueError):
                break
            if unit is not None and lost is not None:
                lost(units[unit[0]], "error: not run (no worker process left)")


def probe(payload, emit):
    """A payload function that reports where it runs (process, GPU, whether torch was already imported)."""
    import sys

    time.sleep(float(payload.get("sleep", 0)))
    emit({"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "torch_imported": "torch" in sys.modules, "payload": payload})


# ---------------------------------------------------------------------------------------------
# submitit

def submitit_job(fn_path, payload):
    """The function a submitit job executes: the payload's items one after another in the job's process."""
    out = []
    resolve(fn_path)(payload, out.append)
    return out


class SubmititLauncher:
    """SLURM (or submitit's LocalExecutor) job arrays. ``params``: partition, gpus_per_node, cpus_per_task,
    mem_gb, timeout_min, array_parallelism, account, qos, constraint, additional_parameters."""

    name = "submitit"

    def __init__(self, folder, params=None, runs_per_job=1, local=False, wait=True, poll_s=None):
        self.folder = folder
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.runs_per_job = max(1, int(runs_per_job or 1))
        self.local = local
        self.wait = wait
        self.poll_s = poll_s if poll_s is not None else (1.0 if local else 30.0)
        self.jobs = []

    def describe(self):
        where = "submitit LocalExecutor (local processes)" if self.local else "SLURM through submitit"
        return f"{where}, {self.runs_per_job} run(s) per job"

    def executor(self, name="croft-sweep"):
        try:
            import submitit
        except ImportError:
            raise LauncherError("--launcher submitit needs the submitit package: pip install submitit") from None
        os.makedirs(self.folder, exist_ok=True)
        executor = submitit.AutoExecutor(folder=os.path.join(self.folder, "%j"),
                                         cluster="local" if self.local else None)
        if not self.local and executor.cluster != "slurm":
            raise LauncherError(f"--launcher submitit: no SLURM found here (submitit picked '{executor.cluster}'); "
                                "run on a SLURM login node, or use --submitit-local to run the jobs as local processes")
        p = self.params
        generic = {"name": name, "timeout_min": p.get("timeout_min", 60 * 24), "cpus_per_task": p.get("cpus_per_task"),
                   "mem_gb": p.get("mem_gb"), "gpus_per_node": p.get("gpus_per_node", 0 if self.local else 1),
                   "tasks_per_node": 1, "nodes": 1}
        slurm = {"slurm_partition": p.get("partition"), "slurm_array_parallelism": p.get("array_parallelism"),
                 "slurm_account": p.get("account"), "slurm_qos": p.get("qos"), "slurm_constraint": p.get("constraint"),
                 "slurm_additional_parameters": p.get("additional_parameters")}
        params = {k: v for k, v in generic.items() if v is not None}
        if not self.local:
            params.update({k: v for k, v in slurm.items() if v is not None})
        executor.update_parameters(**params)
        return executor

    def pack(self, units, size_of):
        """Consecutive units in jobs of about ``runs_per_job`` items (a unit is never split)."""
        jobs, current, count = [], [], 0
        for unit in units:
            n = size_of(unit)
            if current and count + n > self.runs_per_job:
                jobs.append(current)
                current, count = [], 0
            current.append(unit)
            count += n
        if current:
            jobs.append(current)
        return jobs

    def submit(self, fn_path, job_payloads, name="croft-sweep"):
        executor = self.executor(name)
        with executor.batch():
            jobs = [executor.submit(submitit_job, fn_path, payload) for payload in job_payloads]
        self.jobs = jobs
        return jobs

    def cluster(self):
        return "local" if self.local else "slurm"

    def wait_for(self, jobs, on_job_done, interval=None):
        """Call ``on_job_done(index, results or None, error message)`` as each job ends."""
        pending = dict(enumerate(jobs))
        interval = self.poll_s if interval is None else interval
        while pending:
            for index, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[index]
                try:
                    results = job.result()
                    on_job_done(index, results, "")
                except Exception as exc:  # the job failed as a whole (killed, timeout, out of memory)
                    first = str(exc).strip().splitlines()
                    on_job_done(index, None, f"error: submitit job {job.job_id} failed: "
                                             f"{first[-1] if first else type(exc).__name__}")
            if pending:
                time.sleep(interval)


def job_folder_note(launcher):
    return f"submitit logs: {launcher.folder}/<job id>/" if isinstance(launcher, SubmititLauncher) else ""


__all__ = ["LocalLauncher", "SubmititLauncher", "LauncherError", "resolve", "submitit_job", "job_folder_note"]
