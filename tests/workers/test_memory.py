"""workers/memory.py: the estimate grows as it should with every key that sizes a trial, the memory a worker has
is read from /proc/meminfo and the cgroup files (fake ones here), and a trial that cannot fit is refused with
one line naming the keys and the estimate — by check_fits, and by run_trial before it builds anything."""
from __future__ import annotations

import pickle

import pytest

from testkit.tiny import tiny_trial_config
from workers import memory
from workers.config import Cell, ConfigError, Norm, PenaltyConfig, ProbeDtype, TaskName, TrialConfig
from workers.memory import GIB, check_fits, estimate, estimate_bytes
from workers.reporter import Reporter
from workers.trial import run_trial


def cfg_with(**changes) -> TrialConfig:
    cfg = TrialConfig()
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def phase(cfg: TrialConfig, name: str) -> int:
    return next(p.bytes for p in estimate(cfg).phases if p.name == name)


@pytest.mark.parametrize("key, small, large", [
    ("train__batch_size", 64, 128), ("task__seq_len", 100, 200), ("model__hidden_size", 64, 128),
    ("model__layers", 1, 2), ("task__test_size", 1000, 4000), ("task__val_size", 256, 100_000)])
def test_the_estimate_grows_with_every_size_key(key, small, large):
    assert estimate_bytes(cfg_with(**{key: large})) > estimate_bytes(cfg_with(**{key: small}))


def test_the_training_step_is_linear_in_batch_and_length_and_the_cell_sets_its_factor():
    base = phase(cfg_with(train__batch_size=100, task__seq_len=200), "training step")
    assert phase(cfg_with(train__batch_size=200, task__seq_len=200), "training step") == pytest.approx(2 * base)
    assert phase(cfg_with(train__batch_size=100, task__seq_len=400), "training step") == pytest.approx(2 * base)
    by_cell = {c: phase(cfg_with(model__cell=c, model__hidden_size=256), "training step") for c in Cell}
    assert by_cell[Cell.lstm] > by_cell[Cell.gru] > by_cell[Cell.rnn] > by_cell[Cell.esn]
    # H dominates at 256 units: the measured factors per B·T·H (16.5, 11.5, 5.0) show through
    assert by_cell[Cell.lstm] / by_cell[Cell.rnn] == pytest.approx(16.5 / 5.0, rel=0.1)


def test_options_that_cost_memory_add_to_it_and_truncation_saves_it():
    plain = cfg_with(task__name=TaskName.copy_memory, task__seq_len=500)
    attention = cfg_with(task__name=TaskName.copy_memory, task__seq_len=500, model__attention=True)
    assert phase(attention, "training step") > 2 * phase(plain, "training step")   # B × T² scores
    assert phase(cfg_with(train__probe_dtype=ProbeDtype.float64), "gradient probe") > 1.5 * phase(
        cfg_with(), "gradient probe")
    assert phase(cfg_with(model__norm=Norm.layer), "training step") > phase(cfg_with(), "training step")
    long = dict(task__seq_len=2000, model__hidden_size=256)
    assert phase(cfg_with(train__tbptt=50, **long), "training step") < phase(cfg_with(**long), "training step") / 3
    assert phase(cfg_with(train__penalty=PenaltyConfig(omega=1.0)), "training step") > 2 * phase(
        cfg_with(), "training step")   # Ω runs the unrolled cell


def test_digits_draws_at_most_300_test_and_200_validation_images():
    digits = dict(task__name=TaskName.digits, task__seq_len=64)
    assert estimate_bytes(cfg_with(task__test_size=300, **digits)) == estimate_bytes(
        cfg_with(task__test_size=100_000, **digits))
    assert estimate_bytes(cfg_with(task__val_size=200, **digits)) == estimate_bytes(
        cfg_with(task__val_size=100_000, **digits))


def test_a_huge_batch_is_estimated_in_hundreds_of_gib_and_refused_naming_the_keys():
    cfg = cfg_with(train__batch_size=100_000_000)
    assert estimate_bytes(cfg) > 1000 * GIB
    with pytest.raises(ConfigError) as info:
        check_fits(cfg, "cpu")
    message = str(info.value)
    assert info.value.key == "train.batch_size" and info.value.value == 100_000_000
    assert "\n" not in message
    assert message.startswith("train.batch_size=100000000 × task.seq_len=50 × model.hidden_size=64")
    assert "needs about" in message and "GiB" in message and "this worker has" in message
    assert "lower train.batch_size or set train.max_memory_gb" in message
    assert str(pickle.loads(pickle.dumps(info.value))) == message    # as Ray sends it back to the driver


def test_train_max_memory_gb_is_the_budget_when_set():
    tiny = tiny_trial_config()
    assert check_fits(tiny, "cpu").total() < GIB / 2
    tiny.train.max_memory_gb = 0.001
    with pytest.raises(ConfigError, match=r"needs about 0\.\d+ GiB .*this worker has 0\.001 GiB "
                                          r"\(train\.max_memory_gb=0\.001\)"):
        check_fits(tiny, "cpu")
    with pytest.raises(ConfigError, match="train.max_memory_gb=0.001"):
        check_fits(tiny, measure=False)   # a driver of a cluster study checks the key alone
    big = cfg_with(train__batch_size=100_000_000, train__max_memory_gb=100_000.0)
    check_fits(big, "cpu")                # raised by hand: the estimate is not a wall
    big.train.max_memory_gb = 0.0
    check_fits(big, measure=False)        # nothing to check against on the driver of a cluster study


def test_a_driver_checks_only_the_hosts_part_of_a_cuda_trial():
    # parameters of ~40 GiB live on the GPU: the host only makes the data
    cfg = cfg_with(model__hidden_size=50_000, train__device="cuda")
    check_fits(cfg)                                    # train.device=cuda, no PyTorch: the host's part
    with pytest.raises(ConfigError, match="model.hidden_size=50000"):
        check_fits(cfg, "cpu")


def test_run_trial_refuses_before_it_builds_anything():
    started = []

    class Spy(Reporter):
        def on_start(self, info):
            started.append(info)

    with pytest.raises(ConfigError, match="train.max_memory_gb=0.001"):
        run_trial(tiny_trial_config(train__max_memory_gb=0.001), Spy())
    assert started == []


def test_max_memory_gb_is_validated():
    from workers.config import from_dict, to_dict

    data = to_dict(TrialConfig())
    data["train"]["max_memory_gb"] = -1
    with pytest.raises(ConfigError, match=r"train.max_memory_gb=-1 is invalid; valid: a number ≥ 0"):
        from_dict(data)


# --- the memory a worker has ------------------------------------------------------------------------------

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_headroom_counts_the_file_cache_as_free(tmp_path):
    write(tmp_path / "proc", "0::/job\n")
    write(tmp_path / "cg" / "job" / "memory.max", str(8 * GIB))
    write(tmp_path / "cg" / "job" / "memory.current", str(3 * GIB))
    write(tmp_path / "cg" / "job" / "memory.stat", f"anon 1\ninactive_file {GIB}\n")
    write(tmp_path / "cg" / "memory.max", "max\n")
    assert memory.cgroup_headroom(str(tmp_path / "cg"), str(tmp_path / "proc")) == 6 * GIB


def test_cgroup_v1_without_a_limit_is_none_and_with_one_is_read(tmp_path):
    write(tmp_path / "proc", "4:memory:/\n1:cpu:/\n")
    write(tmp_path / "cg" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert memory.cgroup_headroom(str(tmp_path / "cg"), str(tmp_path / "proc")) is None
    write(tmp_path / "cg" / "memory" / "memory.limit_in_bytes", str(4 * GIB))
    write(tmp_path / "cg" / "memory" / "memory.usage_in_bytes", str(GIB))
    assert memory.cgroup_headroom(str(tmp_path / "cg"), str(tmp_path / "proc")) == 3 * GIB


def test_host_memory_is_mem_available_or_the_cgroups_room_when_smaller(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    write(meminfo, "MemTotal:       32000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: None)
    assert memory.host_memory(str(meminfo)) == (20_000_000 * 1024, "the machine's available memory (MemAvailable)")
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: 2 * GIB)
    assert memory.host_memory(str(meminfo)) == (2 * GIB, "the room its memory cgroup leaves")
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: None)
    bytes_, what = memory.host_memory(str(tmp_path / "absent"))   # not Linux: the physical memory
    assert bytes_ > 0 and what == "the machine's physical memory"
