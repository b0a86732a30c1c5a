"""Typed trial configuration: the one definition of every `task.*`, `model.*` and `train.*` key.

These dataclasses are plain Python so that `workers/` stays free of Hydra, Ray, Optuna and MLflow.
`study/` registers them in Hydra's ConfigStore as the schema the YAML files in `conf/` are checked
against (types and choices), and `validate()` below checks the value ranges that types cannot express.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, List, Optional


class TaskName(str, Enum):
    adding = "adding"
    copy_memory = "copy_memory"
    temporal_order = "temporal_order"
    digits = "digits"
    mackey_glass = "mackey_glass"


class Cell(str, Enum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"
    esn = "esn"


class Activation(str, Enum):
    tanh = "tanh"
    sigmoid = "sigmoid"
    relu = "relu"
    leaky_relu = "leaky_relu"
    linear = "linear"


class Init(str, Enum):
    default = "default"
    xavier_uniform = "xavier_uniform"
    xavier_normal = "xavier_normal"
    kaiming = "kaiming"
    orthogonal = "orthogonal"
    identity = "identity"
    scaled = "scaled"


# The recurrent inits for which `model.init_gain` is λ1 of each recurrent block.
LAMBDA1_INITS = (Init.scaled, Init.orthogonal, Init.identity)

# The model keys that only some cells read. validate() refuses a non-default activation or forget bias
# on another cell; a search samples each key only for these cells (study/search/conditions.py).
CELL_KEYS: dict[str, tuple[Cell, ...]] = {
    "model.activation": (Cell.rnn, Cell.esn),
    "model.spectral_radius": (Cell.esn,),
    "model.leak": (Cell.esn,),
    "model.sparsity": (Cell.esn,),
    "model.input_scaling": (Cell.esn,),
    "model.forget_bias": (Cell.lstm,),
    "model.washout": (Cell.esn,),
    "model.ridge": (Cell.esn,),
    "model.bias_scaling": (Cell.esn,),
    "model.fit_run": (Cell.esn,),
    "model.ridge_grid": (Cell.esn,),
}


class InputInit(str, Enum):
    default = "default"
    xavier_uniform = "xavier_uniform"
    xavier_normal = "xavier_normal"
    kaiming = "kaiming"
    orthogonal = "orthogonal"


# The supremum γ of |f′| in Pascanu, Mikolov & Bengio (2013)'s bound λ1 < 1/γ.
GAMMA = {Activation.tanh: 1.0, Activation.sigmoid: 0.25, Activation.relu: 1.0,
         Activation.leaky_relu: 1.0, Activation.linear: 1.0}


class Norm(str, Enum):
    none = "none"
    layer = "layer"
    batch = "batch"


class Optimizer(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    rmsprop = "rmsprop"
    adam = "adam"


class ClipMode(str, Enum):
    none = "none"
    norm = "norm"
    value = "value"


class ProbeDtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class TaskConfig:
    name: TaskName = TaskName.adding
    seq_len: int = 50                 # the dependency length T
    permute: bool = False             # digits: a fixed random pixel permutation
    n_symbols: int = 8                # copy_memory: alphabet size
    n_copy: int = 10                  # copy_memory: symbols to remember
    tau: int = 17                     # mackey_glass: delay
    horizon: int = 1                  # mackey_glass: predict x(t + horizon)
    free_run: int = 0                 # mackey_glass: k > 0 adds Jaeger's free-running NRMSE_k (84: NRMSE84)
    free_run_teacher: int = 0         # mackey_glass: teacher-forced steps before a free run (0 = seq_len)
    ar_order: int = 30                # mackey_glass: order k of the AR(k) least-squares baseline (0 = off)
    series_length: int = 0            # mackey_glass: samples of the series (0 = max(20000, 20·(T + horizon)))
    test_size: int = 1000             # held-out sequences for the final score
    val_size: int = 256               # held-out sequences for intermediate values


@dataclass
class ModelConfig:
    cell: Cell = Cell.rnn
    activation: Activation = Activation.tanh   # rnn and esn only
    hidden_size: int = 64
    layers: int = 1
    init: Init = Init.default                  # recurrent matrices
    init_gain: float = 1.0                     # scaled/orthogonal/identity: λ1 of each recurrent block
    input_init: InputInit = InputInit.default  # input-to-hidden matrices
    forget_bias: Optional[float] = None        # lstm: forget-gate bias (None = PyTorch's init)
    residual: bool = False                     # skip connection around each layer after the first
    attention: bool = False                    # attention over the top layer's states before the readout
    norm: Norm = Norm.none                     # normalization of each layer's output sequence
    spectral_radius: float = 0.9               # esn: reservoir spectral radius
    leak: float = 1.0                          # esn: leak rate a in h = (1-a)h + a f(.)
    sparsity: float = 0.9                      # esn: fraction of zero reservoir weights
    input_scaling: float = 1.0                 # esn: scale of the fixed input weights
    bias_scaling: Optional[float] = None       # esn: scale of the fixed input bias (None = input_scaling)
    washout: int = 50                          # esn: steps of each window (or of the fit run) not fit or scored
    ridge: float = 1e-6                        # esn: λ of the closed-form ridge readout
    ridge_grid: List[float] = field(default_factory=list)   # esn: λs tried on validation ([] = ridge only)
    fit_run: int = 0                           # esn, mackey_glass: one training run of N steps (0 = windows)


@dataclass
class ClipConfig:
    mode: ClipMode = ClipMode.none
    threshold: float = 1.0


@dataclass
class PenaltyConfig:
    l2: float = 0.0          # λ·Σθ² added to the loss
    omega: float = 0.0       # weight of Pascanu et al. (2013)'s vanishing-gradient regularizer Ω


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    optimizer: Optimizer = Optimizer.adam
    lr: float = 1e-3
    momentum: float = 0.9                  # momentum and rmsprop
    clip: ClipConfig = field(default_factory=ClipConfig)
    tbptt: int = 0                          # truncation length k; 0 = full BPTT
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    probe_every: int = 100
    probe_dtype: ProbeDtype = ProbeDtype.float32   # dtype of the probe's trajectory (log scales are float64)
    probe_loss_gradient: bool = True       # ∂L/∂θ at a probe (norms, nonfinite); false only at steps=0
    log_every: int = 10
    seed: int = 0
    device: Device = Device.auto
    max_memory_gb: float = 0.0             # GiB a trial may use; 0 = what the worker has (workers/memory.py)


@dataclass
class TrialConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def mackey_glass_min_samples(t: TaskConfig) -> int:
    """The default (and least) length of the Mackey-Glass series: max(20000, 20·(T + horizon))."""
    return max(20000, 20 * (t.seq_len + t.horizon))


MACKEY_GLASS_MAX_SAMPLES = 1_000_000


def mackey_glass_samples(t: TaskConfig) -> int:
    """The length of the Mackey-Glass series: `task.series_length`, or the default rule when 0."""
    return t.series_length or mackey_glass_min_samples(t)


def mackey_glass_parts(t: TaskConfig) -> dict[str, int]:
    """The lengths of the train, val and test parts of the Mackey-Glass series (workers/tasks/mackey_glass.py)."""
    n = mackey_glass_samples(t)
    n_train, n_val = int(0.7 * n), int(0.15 * n)
    return {"train": n_train, "val": n_val, "test": n - n_train - n_val}


class ConfigError(ValueError):
    """A bad configuration: names the key, the value and what is valid.

    The message is "key='value' is invalid; valid: ..."; errors that are not about one value (an unknown
    key, a malformed override) pass their own `message`, which still names the key.
    """

    def __init__(self, key: str, value: Any, valid: str, message: Optional[str] = None):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(message if message is not None else f"{key}={value!r} is invalid; valid: {valid}")

    def __reduce__(self):   # picklable (Ray sends a worker's exceptions back to the driver)
        return type(self), (self.key, self.value, self.valid, str(self))


def check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(key, value, valid)


def _enum(cls: type[Enum], key: str, value: Any) -> Enum:
    try:
        return value if isinstance(value, cls) else cls(value)
    except ValueError:
        raise ConfigError(key, value, "one of " + ", ".join(m.value for m in cls)) from None


def _build(cls: type, data: dict, prefix: str):
    """A dataclass from a plain dict, refusing unknown keys and coercing enum values."""
    names = {f.name: f for f in fields(cls)}
    for key in data:
        check(key in names, f"{prefix}{key}", data[key], "keys " + ", ".join(names))
    kwargs = {}
    for name, f in names.items():
        if name not in data:
            continue
        value, default = data[name], getattr(cls(), name)
        if is_dataclass(default):
            kwargs[name] = _build(type(default), dict(value), f"{prefix}{name}.")
        elif isinstance(default, Enum):
            kwargs[name] = _enum(type(default), prefix + name, value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def from_dict(data: dict) -> TrialConfig:
    """A validated TrialConfig from a plain mapping with `task`, `model`, `train` sections."""
    cfg = _build(TrialConfig, dict(data), "")
    validate(cfg)
    return cfg


def to_dict(cfg: TrialConfig) -> dict:
    """A JSON-ready mapping (enums as their string values)."""

    def plain(v):
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(asdict(cfg))


def validate(cfg: TrialConfig) -> TrialConfig:
    """Check the ranges that the types alone cannot express; raise ConfigError on the first bad key."""
    t, m, tr = cfg.task, cfg.model, cfg.train
    _enum(TaskName, "task.name", t.name)
    min_len = 64 if t.name == TaskName.digits else 2
    if t.name == TaskName.digits:
        check(t.seq_len == 64, "task.seq_len", t.seq_len, "64 for digits (8×8 pixels, one per step)")
    check(isinstance(t.seq_len, int) and t.seq_len >= min_len, "task.seq_len", t.seq_len,
           f"an integer ≥ {min_len}")
    if t.name == TaskName.temporal_order:
        check(t.seq_len >= 10, "task.seq_len", t.seq_len, "an integer ≥ 10 for temporal_order")
    check(2 <= t.n_symbols <= 64, "task.n_symbols", t.n_symbols, "an integer in [2, 64]")
    check(t.n_copy >= 1, "task.n_copy", t.n_copy, "an integer ≥ 1")
    check(t.tau >= 1, "task.tau", t.tau, "an integer ≥ 1")
    check(t.horizon >= 1, "task.horizon", t.horizon, "an integer ≥ 1")
    check(isinstance(t.free_run, int) and t.free_run >= 0, "task.free_run", t.free_run, "an integer ≥ 0")
    if t.free_run:
        check(t.name == TaskName.mackey_glass and t.horizon == 1, "task.free_run", t.free_run,
              "0 unless task.name=mackey_glass with task.horizon=1 (the network's output is its next input)")
        check(not m.attention, "task.free_run", t.free_run,
              "0 with model.attention=true (a fed-back step would attend to itself alone, not the history)")
    check(isinstance(t.free_run_teacher, int) and t.free_run_teacher >= 0, "task.free_run_teacher",
          t.free_run_teacher, "an integer ≥ 0 (0 = task.seq_len)")
    check(isinstance(t.ar_order, int) and t.ar_order >= 0, "task.ar_order", t.ar_order,
          "an integer ≥ 0 (0 = no AR baseline; read by mackey_glass only)")
    least = mackey_glass_min_samples(t)
    check(isinstance(t.series_length, int) and not isinstance(t.series_length, bool)
          and (t.series_length == 0 or least <= t.series_length <= MACKEY_GLASS_MAX_SAMPLES),
          "task.series_length", t.series_length,
          f"0 (= max(20000, 20·(task.seq_len + task.horizon)) = {least}) or an integer in "
          f"[{least}, {MACKEY_GLASS_MAX_SAMPLES}] (mackey_glass only)")
    if t.series_length:
        check(t.name == TaskName.mackey_glass, "task.series_length", t.series_length,
              "0 unless task.name=mackey_glass (the length of its series)")
    if t.name == TaskName.mackey_glass:
        parts = mackey_glass_parts(t)
        check(t.free_run_teacher + t.free_run < parts["test"], "task.free_run_teacher", t.free_run_teacher,
              f"an integer with task.free_run_teacher + task.free_run < {parts['test']} (the test part's length)")
        check(t.ar_order <= 1000, "task.ar_order", t.ar_order, "an integer in [0, 1000]")
    check(t.test_size >= 1, "task.test_size", t.test_size, "an integer ≥ 1")
    check(t.val_size >= 1, "task.val_size", t.val_size, "an integer ≥ 1")

    check(m.hidden_size >= 1, "model.hidden_size", m.hidden_size, "an integer ≥ 1")
    check(1 <= m.layers <= 16, "model.layers", m.layers, "an integer in [1, 16]")
    check(math.isfinite(m.init_gain) and m.init_gain > 0, "model.init_gain", m.init_gain, "a number > 0")
    if m.cell not in CELL_KEYS["model.activation"]:
        check(m.activation == Activation.tanh, "model.activation", getattr(m.activation, "value", m.activation),
               "tanh for lstm and gru (their gates fix the activations); other activations need rnn or esn")
    if m.forget_bias is not None:
        check(m.cell in CELL_KEYS["model.forget_bias"], "model.forget_bias", m.forget_bias,
              "null unless model.cell=lstm")
        check(math.isfinite(m.forget_bias), "model.forget_bias", m.forget_bias, "a finite number")
    check(m.spectral_radius > 0, "model.spectral_radius", m.spectral_radius, "a number > 0")
    check(0 < m.leak <= 1, "model.leak", m.leak, "a number in (0, 1]")
    check(0 <= m.sparsity < 1, "model.sparsity", m.sparsity, "a number in [0, 1)")
    check(m.input_scaling > 0, "model.input_scaling", m.input_scaling, "a number > 0")
    check(isinstance(m.washout, int) and m.washout >= 0, "model.washout", m.washout, "an integer ≥ 0")
    if m.cell == Cell.esn and t.name in (TaskName.mackey_glass, TaskName.copy_memory):
        check(m.washout < t.seq_len, "model.washout", m.washout,
              f"an integer < task.seq_len ({t.seq_len}): the steps left after the washout fit the readout")
    check(math.isfinite(m.ridge) and m.ridge >= 0, "model.ridge", m.ridge, "a number ≥ 0")
    check(m.bias_scaling is None or (isinstance(m.bias_scaling, (int, float)) and math.isfinite(m.bias_scaling)
                                     and m.bias_scaling >= 0),
          "model.bias_scaling", m.bias_scaling, "null (= model.input_scaling) or a number ≥ 0")
    grid = list(m.ridge_grid or [])
    check(all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in grid), "model.ridge_grid",
          grid, "a list of numbers ≥ 0 ([] = model.ridge alone)")
    check(isinstance(m.fit_run, int) and m.fit_run >= 0, "model.fit_run", m.fit_run,
          "an integer ≥ 0 (0 = train.steps windows of task.seq_len)")
    if m.fit_run:
        check(m.cell == Cell.esn and t.name == TaskName.mackey_glass, "model.fit_run", m.fit_run,
              "0 unless model.cell=esn and task.name=mackey_glass (one run along the training series)")
        n_train = mackey_glass_parts(t)["train"]
        check(m.washout < m.fit_run <= n_train - t.horizon, "model.fit_run", m.fit_run,
              f"an integer in (model.washout, {n_train - t.horizon}]: after the washout, steps of the "
              f"training part ({n_train} samples) with a target")

    check(tr.steps >= 0, "train.steps", tr.steps, "an integer ≥ 0 (0: one probe at initialization, no update)")
    check(tr.batch_size >= 2 or m.norm != Norm.batch, "train.batch_size", tr.batch_size,
           "an integer ≥ 2 with model.norm=batch")
    check(tr.batch_size >= 1, "train.batch_size", tr.batch_size, "an integer ≥ 1")
    check(math.isfinite(tr.lr) and tr.lr > 0, "train.lr", tr.lr, "a number > 0")
    check(0 <= tr.momentum < 1, "train.momentum", tr.momentum, "a number in [0, 1)")
    if tr.clip.mode != ClipMode.none:
        check(math.isfinite(tr.clip.threshold) and tr.clip.threshold > 0, "train.clip.threshold",
               tr.clip.threshold, "a number > 0")
    check(tr.tbptt >= 0, "train.tbptt", tr.tbptt, "0 (full BPTT) or a truncation length ≥ 1")
    if m.attention:   # attention trained on k-step chunks would be scored over all T steps
        check(tr.tbptt == 0, "train.tbptt", tr.tbptt, "0 (full BPTT) when model.attention is true")
    check(tr.penalty.l2 >= 0, "train.penalty.l2", tr.penalty.l2, "a number ≥ 0")
    check(tr.penalty.omega >= 0, "train.penalty.omega", tr.penalty.omega, "a number ≥ 0")
    if tr.penalty.omega > 0:
        check(m.cell in (Cell.rnn, Cell.gru), "train.penalty.omega", tr.penalty.omega,
               "0 unless model.cell is rnn or gru (Ω acts on the state h; esn's reservoir does not learn)")
        check(tr.tbptt == 0, "train.tbptt", tr.tbptt, "0 (full BPTT) when train.penalty.omega > 0")
    check(tr.probe_every >= 1, "train.probe_every", tr.probe_every, "an integer ≥ 1")
    check(isinstance(tr.probe_loss_gradient, bool), "train.probe_loss_gradient", tr.probe_loss_gradient,
          "true or false")
    check(tr.probe_loss_gradient or tr.steps == 0, "train.probe_loss_gradient", tr.probe_loss_gradient,
          "true unless train.steps=0 (a training step takes the loss gradient anyway)")
    check(tr.log_every >= 1, "train.log_every", tr.log_every, "an integer ≥ 1")
    check(isinstance(tr.max_memory_gb, (int, float)) and not isinstance(tr.max_memory_gb, bool)
          and math.isfinite(tr.max_memory_gb) and tr.max_memory_gb >= 0, "train.max_memory_gb", tr.max_memory_gb,
          "a number ≥ 0 (GiB; 0 = the memory this worker has)")
    return cfg
