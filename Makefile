# gradstudy: GNU make. `make setup` builds .venv (once), `make test` (everything), `make test-fast`, `make study`, `make bench`,
# `make browser` (Debian's chromium for the MLflow UI test; apt-get, as root or with sudo).
PY ?= python3
VENV = .venv
VPY = $(VENV)/bin/python

.PHONY: setup browser bytecode lint study test test-fast bench gpu-check gpu-wheels clean distclean

setup: $(VENV)/.installed

# The venv is created only when missing (order-only prerequisite below: its age does not matter).
$(VPY):
	$(PY) -m venv $(VENV)

# Reinstall only when pyproject.toml or constraints.txt changed since the last install.
# torch first, pinned by the constraints, so pip takes the local CPU wheel (PIP_FIND_LINKS) and the
# second install finds it already satisfied instead of resolving a bigger build from an index.
$(VENV)/.installed: pyproject.toml constraints.txt | $(VPY)
	$(VPY) -m pip install -q -c constraints.txt torch==2.13.0
	$(VPY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

# The demo study: 9 small trials on a local Ray, vanishing vs healthy vs exploding side by side.
study: setup
	$(VENV)/bin/gradstudy run experiment=demo

# The browser that tests/tracking/ui/test_ui_browser.py drives (Playwright on the system Chromium, no browser download):
# installed only when /usr/bin/chromium is missing.
browser:
	scripts/install-browser

# The suite on two pytest workers (pytest-xdist), each taking a whole test module at a time (--dist loadfile:
# a module's fixtures, e.g. test_cluster.py's Ray cluster, are built once), the modules with minute-long tests
# first (tests/conftest.py orders them; --no-loadscope-reorder keeps that order). `bytecode` first: where
# PYTHONDONTWRITEBYTECODE is set, every driver and Ray worker the tests start would compile the sources again.
XDIST = -n 2 --dist loadfile --no-loadscope-reorder

# The whole suite, the `long` fault and soak tests too (multi-node cluster, 30-s storage outages, soak):
# on a fresh clone on 2 cores, 2026-12-07: 1092 tests in 490 s of pytest; 2026-12-06: 1088 tests in 465 s (428-471 s that evening), 9 min 6 s for
# `make test` with the venv's install (~65 s) and ruff (562-574 s of pytest earlier that day on a busier machine; one process took
# 18 min before the one-thread cap). `make test PYTEST_ARGS=--durations=20` shows the slowest. CI runs this.
test: setup browser bytecode lint
	$(VPY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

# Lint and import order (ruff, configured in pyproject.toml): `.venv/bin/ruff check --fix .` mends the order.
lint: setup
	$(VENV)/bin/ruff check .

# The tests that need no real service (no Ray, PostgreSQL, mlflow server or browser): about a minute.
test-fast: setup
	$(VPY) -m pytest -q -m "not services"

# The sources' .pyc files (an up-to-date one is skipped).
bytecode: setup
	$(VPY) -m compileall -q study workers tracking conf

# Every benchmark in a short version (the long ones: each script's docstring, e.g. `bench_soak.py --trials 10000`).
BENCHES = bench_per_trial.py --trials 50 ; bench_tune_yardstick.py --trials 40 ; bench_report_scale.py --trials 2000 ; \
	bench_sampler_scale.py --sizes 1000,5000 --asks 3 ; bench_soak.py --trials 100 --window 20 ; \
	bench_study_throughput.py ; bench_tracking_overhead.py --pairs 2 ; bench_trial_overhead.py --pairs 2 ; \
	bench_probe_cost.py --lengths 50 250 1000 --reps 1 ; bench_esn.py ; bench_subnormals.py --steps 100 --pairs 1
bench: setup
	@echo '$(BENCHES)' | tr ';' '\n' | while read -r f args; do [ -n "$$f" ] || continue; \
		echo "== bench/$$f $$args"; $(VPY) bench/$$f $$args || exit 1; done

# The GPU check (docs/performance.md#gpu-check): on a GPU machine with the machine's own python3 and PyTorch, plus
# the wheels of gpu-wheels/ (`make gpu-wheels` downloads them here); CUDA absent: a dry run on the CPU.
# Here: `make gpu-check GPU_PY=.venv/bin/python GPU_CHECK_ARGS="--dry-run --quick"`.
GPU_PY ?= python3
gpu-check:
	$(GPU_PY) scripts/gpu-check $(GPU_CHECK_ARGS)

gpu-wheels: setup
	scripts/gpu-wheels

# Build outputs and caches; the venv stays (see distclean).
clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
