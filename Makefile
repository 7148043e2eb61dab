# Set-up and entry points. `make run` and `make test` are the two commands of the README.
PYTHON  ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEBIAN_PACKAGES := chromium postgresql

export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: setup debian-packages run test test-fast bench-pipeline harness-check serve stop clean

# The venv is rebuilt when the lock, the project metadata or the Python interpreter changes.
# Every version is pinned and installed with --no-deps: no resolver, no backtracking, no download
# beyond the listed files (torch and torchvision come from this machine's local wheel store).
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python && $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Debian packages: chromium for the browser test of the HTML report (a test tool's own browser
# download fails here), postgresql for the history store's PostgreSQL test.
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

setup: $(STAMP) debian-packages

run: setup
	$(BIN)/edgebench run

# Two workers: most tests wait on one single-threaded child at a time, so a 2-core host runs two files at
# once (--dist loadgroup: a file's tests stay on one worker, the full-model tests too; tests/conftest.py).
TEST_WORKERS ?= 2
test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=30

# Unit tests only (pure logic, no toolchain in a child): under two minutes.
test-fast: setup
	$(BIN)/pytest tests/unit -m unit

harness-check: setup
	$(BIN)/python benchmarks/harness_check.py

bench-pipeline: setup
	$(BIN)/python benchmarks/pipeline_timing.py

serve: setup
	$(BIN)/edgebench serve

stop:
	$(BIN)/edgebench stop

clean:
	rm -rf $(VENV) .prefect reports
