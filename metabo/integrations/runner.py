"""``metabo run``: a master and its workers running a user's training command, one trial each,
on one Optuna study in shared storage.

    metabo run --storage sqlite:///tune.db --study lr-search --workers 4 --trials 50 \\
        --prior prior.npz -- python train.py --lr {initial_learning_rate} --momentum ...

Each worker (a thread of the master; the training itself runs in the command's own process)
loops: ask the study for a trial (metabo's sampler, ``PretrainedGPSampler``, so concurrent
trials get distinct configurations), run the command with the trial's values substituted for
``{name}`` (also ``{trial}``, the trial number, and ``{trial_dir}``, its folder), stream its
stdout, and tell the study the result.

The command's side of the protocol (its stdout):
  - an intermediate value: a JSON line with ``step`` and the objective's column (or ``value``),
    e.g. ``{"step": 3, "loss": 0.41}``; reported to the study (``trial.report``), and the run is
    stopped (its process group sent SIGTERM, then SIGKILL) when the study's pruner says so: the
    trial is then PRUNED with its last value;
  - the objective: the last non-empty stdout line, a number or a JSON object with the
    objective's column (or ``value``); its other numeric keys are kept as user attributes
    ``metric:<key>``. Or, with ``objective_file``, that file (same formats) read after the exit.
A command that exits non-zero, prints no objective, or outlives ``timeout`` becomes a FAIL trial
with the reason (``metabo:failure``) and the end of its stderr (``metabo:stderr``) kept, and the
master goes on; ``max_failures`` failures in a row stop it (a broken command should not burn the
whole budget). Each trial's folder keeps its full stdout and stderr.

Many masters (machines) may share one study: ``trials`` counts the study's finished trials
(complete, pruned or failed), whoever ran them. A master killed outright leaves its trials
RUNNING: on an RDB storage the heartbeat fails them (after ``grace_period`` seconds) the next time
any master asks; and a master started on the same machine fails the running trials of a dead
master there and kills their leftover commands, then carries on to ``trials``.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RESERVED = ("trial", "trial_dir")
# System attribute: which master (host, pid) runs a trial, and the command's process id.
RUNNER_KEY = "metabo:runner"
STDERR_KEEP_CHARS = 4000
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# After SIGTERM, a stopped command has this long to exit before SIGKILL.
KILL_GRACE_S = 5.0
POLL_S = 0.05


class RunError(ValueError):
    """Bad settings for a run (a placeholder that is no parameter, an unknown storage, ...)."""


def open_storage(url: str, heartbeat_interval: int = 10, grace_period: int = 60):
    """An Optuna storage from a URL: ``sqlite:///...``, ``postgresql://...`` (RDB, with a
    heartbeat so that trials of dead workers are failed), or ``journal:PATH`` / a ``.journal``
    path (a journal file; Optuna gives it no heartbeat)."""
    if url.startswith("journal:") or url.endswith(".journal"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url[len("journal:") :] if url.startswith("journal:") else url
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise RunError(f"unknown storage {url!r}: give an RDB URL (sqlite:///tune.db) or journal:PATH")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)


def placeholders(command: Sequence[str]) -> set[str]:
    return {name for arg in command for name in PLACEHOLDER.findall(arg)}


def substitute(command: Sequence[str], values: dict) -> list[str]:
    """Each ``{name}`` in the arguments replaced by ``values[name]`` (floats in full precision)."""

    def text(value) -> str:
        return repr(float(value)) if isinstance(value, float) else str(value)

    return [PLACEHOLDER.sub(lambda m: text(values[m.group(1)]), arg) for arg in command]


def parse_objective(text: str, column: str) -> tuple[float, dict[str, float]] | None:
    """A number, or a JSON object with ``column`` (or ``value``) -> (value, other numeric keys);
    None when the text is neither."""
    try:
        parsed = json.loads(text.strip())
    except ValueError:
        return None
    return _objective_of(parsed, column)


def intermediate(text: str, column: str) -> tuple[int, float] | None:
    """A JSON line with ``step`` and ``column`` (or ``value``) -> (step, value); else None."""
    if '"step"' not in text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or "step" not in parsed:
        return None
    found, step = _objective_of(parsed, column), parsed["step"]
    if found is None or not _is_number(step) or step != int(step):
        return None
    return int(step), found[0]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _objective_of(parsed, column: str) -> tuple[float, dict[str, float]] | None:
    if _is_number(parsed):
        return float(parsed), {}
    if not isinstance(parsed, dict):
        return None
    key = column if column in parsed else "value" if "value" in parsed else None
    if key is None or not _is_number(parsed[key]):
        return None
    extras = {k: float(v) for k, v in parsed.items() if k not in (key, "step") and _is_number(v)}
    return float(parsed[key]), extras


@dataclass
class Outcome:
    """How one trial ended."""

    state: TrialState
    value: float | None = None
    reason: str = ""
    stderr: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Runner:
    """A master: ``workers`` threads, each running ``command`` for one trial at a time, until
    the study has ``trials`` finished trials (see the module docs)."""

    study: optuna.Study
    space: object  # metabo.space.Space: the parameters to suggest and the objective's column
    command: tuple[str, ...]
    trials: int
    workers: int = 1
    workdir: Path = Path("runs")
    timeout: float | None = None
    objective_file: str | None = None
    max_failures: int = 5
    log: Callable[[str], None] = field(default=lambda line: print(f"metabo run: {line}", file=sys.stderr, flush=True))

    def __post_init__(self):
        known = set(self.space.names) | set(RESERVED)
        unknown = sorted(placeholders(self.command) - known)
        if unknown:
            raise RunError(
                f"the command uses {', '.join('{' + u + '}' for u in unknown)}, which are not parameters of the space "
                f"(known: {', '.join('{' + k + '}' for k in sorted(known))})"
            )
        if not self.command:
            raise RunError("no command to run: put it after --")
        if self.trials < 1 or self.workers < 1:
            raise RunError(f"trials and workers must be >= 1, got {self.trials} and {self.workers}")
        self.workdir = Path(self.workdir)
        self._ask_lock = threading.Lock()
        self._stop = threading.Event()
        self._failures_in_row = 0
        self._children: dict[int, subprocess.Popen] = {}  # trial number -> running command
        self._children_lock = threading.Lock()
        self._abort: str | None = None
        self._host = socket.gethostname()
        storage = self.study._storage
        self._heartbeat = getattr(storage, "heartbeat_interval", None) if hasattr(storage, "record_heartbeat") else None

    # ---- the master ---------------------------------------------------------------------------
    def run(self) -> int:
        """Run to ``trials`` finished trials; -> 0, or 1 when stopped by ``max_failures``."""
        self.recover()
        finished = self._count(FINISHED)
        self.log(
            f"study {self.study.study_name!r}: {finished} of {self.trials} trials finished already; "
            f"{self.workers} worker{'s' if self.workers > 1 else ''}; trial folders in {self.workdir}"
        )
        threads = [threading.Thread(target=self._worker, name=f"metabo-worker-{i}", daemon=True) for i in range(self.workers)]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        except BaseException:  # Ctrl-C, SIGTERM: stop the commands, fail their trials, re-raise
            self._stop.set()
            self._stop_children()
            for thread in threads:
                thread.join(timeout=KILL_GRACE_S + 5)
            raise
        if self._abort:
            self.log(self._abort)
            return 1
        best = self._best()
        done = self._count(FINISHED)
        self.log(f"done: {done} trials finished" + (f"; best {self._column}={best.value:.6g} (trial {best.number})" if best else ""))
        return 0

    def recover(self) -> int:
        """Fail the RUNNING trials of dead masters on this machine (killing their leftover
        commands) and, on RDB storages, trials whose heartbeat stopped. -> trials failed."""
        failed = 0
        if self._heartbeat:
            failed += len(optuna.storages.fail_stale_trials(self.study) or [])
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.system_attrs.get(RUNNER_KEY)
            if not owner or owner.get("host") != self._host or _alive(owner.get("pid")):
                continue
            child = owner.get("child")
            if child and _alive(child):
                try:
                    os.killpg(int(child), signal.SIGKILL)
                except OSError:
                    pass
            self.study._storage.set_trial_user_attr(trial._trial_id, "metabo:failure", f"its master (pid {owner.get('pid')}) died")
            self.study.tell(trial.number, state=TrialState.FAIL)
            failed += 1
        if failed:
            self.log(f"failed {failed} trial{'s' if failed > 1 else ''} left running by a dead master")
        return failed

    # ---- one worker ---------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self._stop.is_set():
            with self._ask_lock:
                if self._stop.is_set():
                    return
                if self._heartbeat:
                    optuna.storages.fail_stale_trials(self.study)
                if self._count((*FINISHED, TrialState.RUNNING)) >= self.trials:
                    return
                with warnings.catch_warnings():  # this loop records the heartbeat itself
                    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
                    trial = self.study.ask()
                self._own(trial, child=None)
                values = self._suggest(trial)
            outcome = self._execute(trial, values)
            self._tell(trial, outcome)

    def _suggest(self, trial: optuna.Trial) -> dict:
        values = {}
        for p in self.space.parameters:
            if p.is_categorical:
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.type == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        return values

    def _own(self, trial: optuna.Trial, child: int | None) -> None:
        owner = {"host": self._host, "pid": os.getpid(), "child": child}
        self.study._storage.set_trial_system_attr(trial._trial_id, RUNNER_KEY, owner)

    def _execute(self, trial: optuna.Trial, values: dict) -> Outcome:
        folder = self.workdir / f"trial_{trial.number:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        context = {**values, "trial": trial.number, "trial_dir": str(folder)}
        argv = substitute(self.command, context)
        env = {**os.environ, "METABO_TRIAL": str(trial.number), "METABO_TRIAL_DIR": str(folder)}
        start = time.monotonic()
        with open(folder / "stdout.txt", "w") as out_file, open(folder / "stderr.txt", "w+") as err_file:
            try:
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=err_file, text=True, env=env, start_new_session=True, bufsize=1
                )
            except OSError as err:
                return Outcome(TrialState.FAIL, reason=f"cannot start {argv[0]!r}: {err}")
            with self._children_lock:
                self._children[trial.number] = proc
            self._own(trial, child=proc.pid)
            lines: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
            reader.start()
            last_line, stopped, last_beat = "", None, -math.inf  # first heartbeat at once
            reported, steps = None, set()
            while True:
                try:
                    line = lines.get(timeout=POLL_S)
                except queue.Empty:
                    line = None
                if line is None and not reader.is_alive() and lines.empty():
                    break
                if line is not None:
                    out_file.write(line)
                    if line.strip():
                        last_line = line
                    report = intermediate(line, self._column)
                    if report is not None and stopped is None:
                        step, value = report
                        if step not in steps:  # Optuna keeps the first value of a step
                            steps.add(step)
                            trial.report(value, step)
                            reported = value
                            if trial.should_prune():
                                stopped = f"pruned at step {step}"
                                _terminate(proc)
                now = time.monotonic()
                if self._heartbeat and now - last_beat >= self._heartbeat:
                    self.study._storage.record_heartbeat(trial._trial_id)
                    last_beat = now
                if stopped is None and self.timeout is not None and now - start > self.timeout:
                    stopped = f"timed out after {self.timeout:g} s"
                    _terminate(proc)
                if stopped is None and self._stop.is_set():
                    stopped = "the master was interrupted"
                    _terminate(proc)
            code = proc.wait()
            with self._children_lock:
                self._children.pop(trial.number, None)
            err_file.seek(0)
            stderr = err_file.read()[-STDERR_KEEP_CHARS:]
        seconds = time.monotonic() - start
        if stopped and stopped.startswith("pruned"):
            return Outcome(TrialState.PRUNED, value=reported, reason=stopped, seconds=seconds)
        if stopped:
            return Outcome(TrialState.FAIL, reason=stopped, stderr=stderr, seconds=seconds)
        if code != 0:
            return Outcome(TrialState.FAIL, reason=f"exit code {code}", stderr=stderr, seconds=seconds)
        if self.objective_file:
            path = Path(substitute([self.objective_file], context)[0])
            path = path if path.is_absolute() else folder / path
            try:
                source, text = str(path), path.read_text()
            except OSError as err:
                return Outcome(TrialState.FAIL, reason=f"no objective file: {err}", stderr=stderr, seconds=seconds)
        else:
            source, text = "the last stdout line", last_line
        found = parse_objective(text, self._column)
        if found is None or not math.isfinite(found[0]):
            shown = text.strip()[:200] or "(nothing)"
            return Outcome(
                TrialState.FAIL,
                reason=f"no objective in {source}: expected a number or JSON with {self._column!r} or 'value', got {shown!r}",
                stderr=stderr,
                seconds=seconds,
            )
        return Outcome(TrialState.COMPLETE, value=found[0], metrics=found[1], stderr=stderr, seconds=seconds)

    def _tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        storage = self.study._storage
        for key, value in outcome.metrics.items():
            storage.set_trial_user_attr(trial._trial_id, f"metric:{key}", value)
        if outcome.reason:
            storage.set_trial_user_attr(trial._trial_id, "metabo:failure", outcome.reason)
        if outcome.state == TrialState.FAIL and outcome.stderr:
            storage.set_trial_user_attr(trial._trial_id, "metabo:stderr", outcome.stderr)
        if outcome.state == TrialState.COMPLETE:
            self.study.tell(trial, outcome.value)
        else:
            self.study.tell(trial, state=outcome.state)
        with self._ask_lock:
            self._failures_in_row = self._failures_in_row + 1 if outcome.state == TrialState.FAIL else 0
            if self._failures_in_row >= self.max_failures and not self._stop.is_set():
                tail = outcome.stderr.strip().splitlines()[-1:] or [""]
                self._abort = (
                    f"stopped: {self._failures_in_row} trials in a row failed; the last: {outcome.reason}"
                    + (f"; its stderr ends: {tail[0][:300]}" if tail[0] else "")
                    + f" (see {self.workdir / f'trial_{trial.number:05d}'})"
                )
                self._stop.set()
        self._progress(trial.number, outcome)

    def _progress(self, number: int, outcome: Outcome) -> None:
        done = self._count(FINISHED)
        running = self._count((TrialState.RUNNING,))
        what = (
            f"{self._column}={outcome.value:.6g}"
            if outcome.state == TrialState.COMPLETE
            else f"{outcome.state.name.lower()} ({outcome.reason})"
        )
        best = self._best()
        best_text = f"; best {best.value:.6g} (trial {best.number})" if best else ""
        self.log(f"[{done}/{self.trials}] trial {number} {what} in {outcome.seconds:.1f} s{best_text}; {running} running")

    # ---- helpers ------------------------------------------------------------------------------
    @property
    def _column(self) -> str:
        return self.space.objective.column

    def _count(self, states) -> int:
        return len(self.study.get_trials(deepcopy=False, states=tuple(states)))

    def _best(self):
        try:
            return self.study.best_trial
        except ValueError:
            return None

    def _stop_children(self) -> None:
        with self._children_lock:
            children = list(self._children.values())
        for proc in children:
            _terminate(proc)


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    stream.close()


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, SIGKILL it if it has not exited after a grace period
    (in the background: the caller keeps reading its output)."""

    def kill_later():
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        return
    threading.Thread(target=kill_later, daemon=True).start()


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["Runner", "RunError", "Outcome", "open_storage", "parse_objective", "intermediate", "substitute", "placeholders", "RUNNER_KEY"]
