"""A trial's peak memory, estimated from its config before anything is allocated, and the memory it may use.

    estimate(cfg)          -> Estimate: the parts of the peak, each with the keys that drive it
    estimate_bytes(cfg)    -> int: the estimated peak, in bytes above an idle worker process
    available(device)      -> (bytes, what they are): the memory this worker has (or `train.max_memory_gb`)
    check_fits(cfg, ...)   raises ConfigError, one line naming the keys and the estimate, when it does not fit

Pure arithmetic on the config (no PyTorch: the driver checks studies without loading it). The counts are
float32 values ("units"); every constant was measured, not derived from first principles: the peak RSS of each
phase of a trial in a fresh process on the CPU (PyTorch 2.13, oneDNN's fused RNN kernels, glibc malloc), fit
over B × T × H grids per cell (see docs/performance.md, `bench/bench_memory_estimate.py` for the whole-trial
check). What a trial holds at its peak is:

    parameters (weights, gradients, optimizer state)
  + the data held through training: the validation set, the batch (and Mackey-Glass's test set, made at start)
  + the largest of the phases that run one after another:
      training step   B × k × (f·H + f'·H·(layers−1) + c) + B·T·c0    k = T, or train.tbptt when it truncates
      gradient probe  B × T × H × (a + b·layers + …) + B × H × min(T, 256) × c   (× 2 for probe_dtype float64)
      validation      V × T × H × e (no graph), the test set S × T × (H × e + its inputs) at the end
      making a batch  B × T × (the task's inputs, as generated: one-hot int64 before float32)
      ESN readout     B × T × H × 5.6 (features and their float64 design rows) for per-step tasks
      AR baseline     S × T × ar_order float64 histories (mackey_glass)
  + a constant: the first kernels' caches, scikit-learn for digits.

Per-cell units per B·T·H for the first layer (f: training, saved for BPTT plus the backward's
temporaries; e: a forward without a graph; the probe's trajectory per layer):

    cell   f (train)  f' (more layers)  e (eval)  probe per layer  probe chunk
    rnn       5.0         2.5              3.5         2              0
    lstm     16.5         7                2.1         7             13.6
    gru      11.5         8                6.0         6.1           12.6
    esn       3           1.5              2.5         2              0

(oneDNN saves the gates and states of every step: an LSTM 4 gates + h + c, plus the backward's gate
gradients; a GRU 3 gates + states; `train.penalty.omega` runs the unrolled Python cell, whose autograd saves
more: rnn 12.5, gru 42.5.) `model.attention` with a per-step task adds B × T² scores (4 units training, 2.3
evaluation, 3.3 probe); `model.norm` and `model.residual` a few units of B·T·H. On a CUDA device the activations
live on the GPU: the data, made on the host first, is checked against host memory and the rest against the
GPU's free memory, with the same (CPU-measured) constants.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from workers.config import (
    Cell,
    ConfigError,
    Device,
    Norm,
    Optimizer,
    ProbeDtype,
    TaskName,
    TrialConfig,
    mackey_glass_parts,
    mackey_glass_samples,
)

# the keys the estimate reads, and those it grows with (a search's largest value of these is its largest trial)
MEMORY_KEYS = frozenset({
    "task.name", "task.seq_len", "task.n_symbols", "task.n_copy", "task.test_size", "task.val_size",
    "task.series_length", "task.horizon", "task.ar_order", "task.free_run", "task.free_run_teacher",
    "model.cell", "model.hidden_size", "model.layers", "model.attention", "model.norm", "model.residual",
    "model.fit_run", "train.batch_size", "train.tbptt", "train.optimizer", "train.probe_dtype",
    "train.penalty.omega", "train.device", "train.max_memory_gb"})
GROWS_WITH = frozenset({
    "task.seq_len", "task.n_symbols", "task.n_copy", "task.test_size", "task.val_size", "task.series_length",
    "task.horizon", "task.ar_order", "task.free_run", "model.hidden_size", "model.layers", "model.fit_run",
    "train.batch_size", "train.penalty.omega"})

FLOAT = 4                  # bytes of one float32 unit
GIB = 1024 ** 3            # train.max_memory_gb counts GiB, as `free -g` and `docker --memory 8g` do

# units per B·T·H of the first layer and of each further one (training step, evaluation), measured
TRAIN_FIRST = {Cell.rnn: 5.0, Cell.lstm: 16.5, Cell.gru: 11.5, Cell.esn: 3.0}
TRAIN_MORE = {Cell.rnn: 2.5, Cell.lstm: 7.0, Cell.gru: 8.0, Cell.esn: 1.5}
OMEGA_FIRST = {Cell.rnn: 12.5, Cell.gru: 42.5}   # train.penalty.omega > 0: the unrolled cell's autograd
EVAL_FIRST = {Cell.rnn: 3.5, Cell.lstm: 2.1, Cell.gru: 6.0, Cell.esn: 2.5}
EVAL_MORE = {Cell.rnn: 1.2, Cell.lstm: 1.5, Cell.gru: 1.8, Cell.esn: 2.0}
# the probe (workers/gradients/log_profile.py): per B·T·H once (the walk), per layer (its trajectory), once more where
# layers > 1 (the input adjoints, gates wide); per B·H·min(T, CHUNK) (the trajectory's chunk temporaries)
PROBE_WALK = {Cell.rnn: 3.5, Cell.lstm: 1.6, Cell.gru: 0.6, Cell.esn: 4.0}
PROBE_LAYER = {Cell.rnn: 2.0, Cell.lstm: 7.0, Cell.gru: 6.1, Cell.esn: 2.0}
PROBE_INPUTS = {Cell.rnn: 2.5, Cell.lstm: 11.0, Cell.gru: 7.9, Cell.esn: 2.5}
PROBE_CHUNK = {Cell.rnn: 0.0, Cell.lstm: 13.6, Cell.gru: 12.6, Cell.esn: 0.0}
CHUNK = 256                # workers/model/jacobians.py Trajectory.CHUNK
STEP_UNITS = 60            # per B·T of a training step besides the hidden units (measured intercept), + 2·(I + O)
ATTENTION = {"train": 4.0, "eval": 2.3, "probe": 3.3}   # per B·T² (per-step tasks: every step attends)
ESN_FIT = 5.6              # per B·T·H: an ESN's features and their float64 design rows (per-step tasks)
ESN_HELD = 2.0             # per B·T·H: the last batch's features and rows, alive while the probe runs
GATES = {Cell.lstm: 4, Cell.gru: 3}
OPTIMIZER_STATE = {Optimizer.sgd: 0, Optimizer.momentum: 1, Optimizer.rmsprop: 2, Optimizer.adam: 2}
BASE_BYTES = 90 * 10 ** 6          # a tiny trial's peak above the idle process: kernels' caches, threads (measured)
DIGITS_BYTES = 160 * 10 ** 6       # scikit-learn imported and its digits loaded
ESN_BYTES = 10 * 10 ** 6           # the reservoir's initialization


@dataclass
class Part:
    """One term of the estimate: its bytes, its name and the keys (with their values) that drive it."""
    name: str
    bytes: int
    keys: tuple[tuple[str, object], ...] = ()
    host: bool = False     # made on the host even when the trial runs on a GPU (data generation)
    note: str = ""         # what else shapes it (the cell)

    def drivers(self) -> str:
        keys = " × ".join(f"{k}={v}" for k, v in self.keys)
        return f"{keys} ({self.note})" if keys and self.note else keys


@dataclass
class Estimate:
    held: list[Part] = field(default_factory=list)     # held through the trial
    phases: list[Part] = field(default_factory=list)   # one at a time: the largest counts

    def peak_phase(self, host_only: bool = False) -> Optional[Part]:
        phases = [p for p in self.phases if p.host or not host_only]
        return max(phases, key=lambda p: p.bytes, default=None)

    def total(self, host_only: bool = False) -> int:
        """The peak: what is held plus the largest phase (`host_only`: the data made on the host alone)."""
        phase = self.peak_phase(host_only)
        held = sum(p.bytes for p in self.held if p.host or not host_only)
        return held + (phase.bytes if phase else 0)

    def main(self, host_only: bool = False) -> Part:
        """The largest part of the peak that a key sizes (whose keys a refusal names)."""
        phase = self.peak_phase(host_only)
        parts = [p for p in self.held if (p.host or not host_only) and p.keys] + ([phase] if phase else [])
        return max(parts, key=lambda p: p.bytes)


def _dims(cfg: TrialConfig) -> dict:
    """The task's sequence length L, input/output sizes, per-step target, target units per sequence, the
    held-out sizes actually drawn, and the units per B·L of making a batch (measured)."""
    t = cfg.task
    name = TaskName(t.name)
    if name == TaskName.copy_memory:
        inputs = t.n_symbols + 2
        return dict(L=t.seq_len + 2 * t.n_copy, I=inputs, O=t.n_symbols + 1, per_step=True, y=2,
                    V=t.val_size, S=t.test_size, make=3 * inputs + 6)
    if name == TaskName.temporal_order:
        return dict(L=t.seq_len, I=4, O=4, per_step=False, y=0, V=t.val_size, S=t.test_size, make=3 * 4 + 6)
    if name == TaskName.digits:
        return dict(L=64, I=1, O=10, per_step=False, y=0, V=min(t.val_size, 200), S=min(t.test_size, 300), make=2)
    if name == TaskName.mackey_glass:
        return dict(L=t.seq_len, I=1, O=1, per_step=True, y=1, V=t.val_size, S=t.test_size, make=4)
    return dict(L=t.seq_len, I=2, O=1, per_step=False, y=0, V=t.val_size, S=t.test_size, make=8.5)


def parameters(cfg: TrialConfig, inputs: int, outputs: int) -> int:
    """Trainable-or-not parameter count of the network (workers/model/network.py)."""
    m = cfg.model
    H, gates = m.hidden_size, GATES.get(Cell(m.cell), 1)
    total = 0
    for i in range(m.layers):
        fan_in = inputs if i == 0 else H
        total += gates * H * (fan_in + H + 2)
    width = 2 * H if m.attention else H
    total += (width + 1) * outputs + (H * H if m.attention else 0) + (2 * H * m.layers if m.norm != Norm.none else 0)
    return total


def estimate(cfg: TrialConfig) -> Estimate:
    """The parts of the trial's peak memory (bytes above an idle worker that imported PyTorch)."""
    t, m, tr = cfg.task, cfg.model, cfg.train
    cell, d = Cell(m.cell), _dims(cfg)
    L, n_in, n_out, per_step = d["L"], d["I"], d["O"], d["per_step"]
    B, V, S, H, N = tr.batch_size, d["V"], d["S"], m.hidden_size, m.layers
    esn = cell == Cell.esn
    probe_scale = 2 if ProbeDtype(tr.probe_dtype) == ProbeDtype.float64 else 1
    k = tr.tbptt if 0 < tr.tbptt < L else L
    per_seq = L * n_in + (L * d["y"] if per_step else 2)      # one sequence's inputs and targets, in units
    io = n_in + (n_out if per_step else 0)

    keys_b = (("train.batch_size", B), ("task.seq_len", t.seq_len))
    keys_bh = keys_b + (("model.hidden_size", H), ("model.layers", N))
    cell_note = f"model.cell={cell.value}"
    est = Estimate()

    # --- held through the trial ---
    p = parameters(cfg, n_in, n_out)
    copies = 1 if esn else 2 + OPTIMIZER_STATE[Optimizer(tr.optimizer)]
    est.held.append(Part("parameters", p * copies * FLOAT, (("model.hidden_size", H), ("model.layers", N))))
    est.held.append(Part("validation set", V * per_seq * FLOAT, (("task.val_size", V), ("task.seq_len", t.seq_len)),
                         host=True))
    est.held.append(Part("batch", B * per_seq * FLOAT, keys_b, host=True))
    constant = BASE_BYTES + (DIGITS_BYTES if TaskName(t.name) == TaskName.digits else 0) + (ESN_BYTES if esn else 0)
    if TaskName(t.name) == TaskName.mackey_glass:   # its test set is drawn at start; its series integrated
        samples = mackey_glass_samples(t)
        est.held.append(Part("test set", S * per_seq * FLOAT, (("task.test_size", S), ("task.seq_len", t.seq_len)),
                             host=True))
        constant += (samples + 1000) * 10 * 8 + samples * 12
    est.held.append(Part("fixed cost", constant, (), host=True))

    # --- phases, one at a time ---
    def attention(kind: str, rows: int, steps: int) -> float:
        if not m.attention:
            return 0.0
        return rows * steps * steps * ATTENTION[kind] if per_step else rows * steps * H * 1.5 * (kind == "train")

    def forward(rows: int) -> float:   # a forward without a graph (validation, test), in units
        return (rows * L * (EVAL_FIRST[cell] * H + EVAL_MORE[cell] * H * (N - 1) + io + 2)
                + attention("eval", rows, L))

    if esn:
        fit = B * L * H * (ESN_FIT + 0.5 * (N - 1)) if per_step else B * L * H * EVAL_FIRST[cell]
        if m.fit_run:   # one run along the series: its kept readout rows
            fit = m.fit_run * (H + 2) * 2 + 1000 * H * 3
        est.phases.append(Part("ESN readout fit", int(fit * FLOAT), keys_bh, note=cell_note))
    first = OMEGA_FIRST.get(cell, TRAIN_FIRST[cell]) if tr.penalty.omega > 0 else TRAIN_FIRST[cell]
    step = (B * k * (first * H + TRAIN_MORE[cell] * H * (N - 1) + 2 * io) + B * L * STEP_UNITS
            + attention("train", B, k))
    if m.norm != Norm.none:
        step += B * k * H * N
    if m.residual and N > 1:
        step += B * k * H * (N - 1)
    train_keys = keys_bh if k == L else keys_b[:1] + (("train.tbptt", k),) + keys_bh[2:]
    est.phases.append(Part("training step", int(step * FLOAT), train_keys, note=cell_note))

    probe = (B * L * H * (PROBE_WALK[cell] + PROBE_LAYER[cell] * N + (PROBE_INPUTS[cell] if N > 1 else 0))
             + B * H * min(L, CHUNK) * PROBE_CHUNK[cell] + B * L * (io + 2))   # one layer's chunks at a time
    if m.norm != Norm.none:
        probe += B * L * H * (3 + (N - 1))
    if m.residual and N > 1:
        probe += B * L * H * 3
    if esn and per_step and not m.fit_run:   # the last batch's features and design rows, still referenced
        probe += B * L * H * ESN_HELD
    probe = probe * probe_scale + attention("probe", B, L) + p * (1 + probe_scale) + 6 * GATES.get(cell, 1) * H * H
    est.phases.append(Part("gradient probe", int(probe * FLOAT), keys_bh, note=cell_note))

    est.phases.append(Part("validation", int(forward(V) * FLOAT),
                           (("task.val_size", V), ("task.seq_len", t.seq_len), ("model.hidden_size", H))))
    test = forward(S) + (0 if TaskName(t.name) == TaskName.mackey_glass else S * per_seq)
    est.phases.append(Part("test set", int(test * FLOAT),
                           (("task.test_size", S), ("task.seq_len", t.seq_len), ("model.hidden_size", H))))
    est.phases.append(Part("making a batch", int(B * L * d["make"] * FLOAT), keys_b, host=True))
    est.phases.append(Part("making the held-out sets", int(max(V, S) * L * d["make"] * FLOAT),
                           (("task.test_size", S), ("task.val_size", V), ("task.seq_len", t.seq_len)), host=True))
    if TaskName(t.name) == TaskName.mackey_glass:
        if t.ar_order:   # float64 histories and their int64 indices, and the least-squares fit's rows
            ar = S * L * t.ar_order * 6 + mackey_glass_parts(t)["train"] * t.ar_order * 6
            est.phases.append(Part("AR baseline", int(ar * FLOAT), (("task.test_size", S), ("task.seq_len", t.seq_len),
                                                                   ("task.ar_order", t.ar_order)), host=True))
        if t.free_run:
            runs = S * min(t.free_run_teacher or L, 100) * H * (EVAL_FIRST[cell] + N)
            est.phases.append(Part("free run", int(runs * FLOAT), (("task.test_size", S), ("model.hidden_size", H))))
    return est


def estimate_bytes(cfg: TrialConfig) -> int:
    """The trial's estimated peak memory in bytes, above an idle worker that imported PyTorch and workers/."""
    return estimate(cfg).total()


# --- the memory this worker has --------------------------------------------------------------------------

def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat(text: Optional[str], key: str) -> int:
    """The number after `key` in a "key value" or "key: value kB" listing (memory.stat, /proc/meminfo); 0 if none."""
    for line in (text or "").splitlines():
        words = line.replace(":", " ").split()
        if len(words) >= 2 and words[0] == key and words[1].isdigit():
            return int(words[1])
    return 0


def cgroup_headroom(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> Optional[int]:
    """What the process's memory cgroup still lets it take: limit − (usage − inactive file cache), the
    smallest over the cgroup and its parents; None without a limit. cgroup v2 (memory.max, memory.current)
    and v1 (memory.limit_in_bytes, memory.usage_in_bytes)."""
    best: Optional[int] = None
    for line in (_read(proc) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, files = os.path.join(root, "memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                         "total_inactive_file")
        else:
            continue
        parts = [p for p in path.strip().split("/") if p]
        # the cgroup's own folder and its parents; in a cgroup namespace the root folder is the container's own
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(base, *parts[:depth])
            limit = (_read(os.path.join(folder, files[0])) or "").strip()
            if not limit.isdigit() or int(limit) >= 1 << 60:   # "max", absent, or v1's "no limit"
                continue
            usage = (_read(os.path.join(folder, files[1])) or "0").strip()
            cache = _stat(_read(os.path.join(folder, "memory.stat")), files[2])
            room = int(limit) - max(0, (int(usage) if usage.isdigit() else 0) - cache)
            best = room if best is None else min(best, room)
    return None if best is None else max(0, best)


def host_memory(meminfo: str = "/proc/meminfo") -> tuple[int, str]:
    """(bytes, what they are): the kernel's MemAvailable — what can be allocated now without swapping, the page
    cache it can drop counted in, other processes' memory not — or less where a cgroup limit leaves less; total
    physical memory where /proc/meminfo is missing (not Linux)."""
    available = _stat(_read(meminfo), "MemAvailable") * 1024
    room = cgroup_headroom()
    if available and room is not None and room < available:
        return room, "the room its memory cgroup leaves"
    if available:
        return available, "the machine's available memory (MemAvailable)"
    if room is not None:
        return room, "the room its memory cgroup leaves"
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "the machine's physical memory"
    except (ValueError, OSError, AttributeError):
        return 0, "unknown"


def gpu_memory(device: object) -> tuple[int, str]:
    """(bytes, what they are): the free memory of a CUDA device (the worker has PyTorch loaded already)."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free, f"the free memory of {device}"


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / GIB:.3f} GiB"


def check_fits(cfg: TrialConfig, device: object = None, measure: bool = True) -> Estimate:
    """Refuse a trial whose estimated peak exceeds the memory it may use: `train.max_memory_gb` when > 0, else
    (with `measure`) what this worker has. Raises ConfigError with one line naming the keys and the estimate.

    `device`: where the trial runs — a torch.device or "cpu"/"cuda" (the worker: on CUDA the data made on the
    host is checked against host memory and the whole estimate against the GPU's free memory); None (a
    driver, without PyTorch): `train.device` says it, and with `cuda` only the host's part is checked here.
    `measure=False` (a driver whose trials run on other machines) checks `train.max_memory_gb` alone."""
    est = estimate(cfg)
    if device is None:
        kind, gpu_known = ("cuda" if Device(cfg.train.device) == Device.cuda else "cpu"), False
    else:
        kind, gpu_known = getattr(device, "type", str(device)), True
    limit_gb = cfg.train.max_memory_gb
    checks = []   # (needed, its largest part, what the worker has, what that is)
    if limit_gb > 0:
        what = f"train.max_memory_gb={limit_gb:g}"
        checks.append((est.total(), est.main(), int(limit_gb * GIB), what))
    elif measure:
        has, what = host_memory()
        host_only = kind == "cuda"
        checks.append((est.total(host_only), est.main(host_only), has, f"train.max_memory_gb=0: {what}"))
        if kind == "cuda" and gpu_known:
            free, what = gpu_memory(device)
            checks.append((est.total(), est.main(), free, f"train.max_memory_gb=0: {what}"))
    for needed, part, has, what in checks:
        if has and needed > has:
            raise refusal(cfg, est, needed, part, has, what)
    return est


def refusal(cfg: TrialConfig, est: Estimate, needed: int, part: Part, has: int, what: str) -> ConfigError:
    phase = est.peak_phase()
    pieces = [f"{p.name} {_gib(p.bytes)}" for p in [phase] + sorted(est.held, key=lambda p: -p.bytes)
              if p is not None and p.bytes >= needed / 200]
    first = part.keys[0] if part.keys else ("train.max_memory_gb", cfg.train.max_memory_gb)
    lower = first[0] if part.keys else "the trial's sizes"
    message = (f"{part.drivers() or part.name} needs about {_gib(needed)} ({', '.join(pieces)}); this worker has "
               f"{_gib(has)} ({what}); lower {lower} or set train.max_memory_gb")
    return ConfigError(first[0], first[1], f"a trial whose estimated peak fits in {_gib(has)}", message)

