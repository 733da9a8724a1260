# Two commands set up everything: `make lab` (work) and `make test` (check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install lab lint test report release wheel clean

# The virtual environment, with the course installed in editable mode plus the
# dev (JupyterLab, nbval, pytest) and instructor (nbgrader) extras.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,instructor]"
	touch $@

install: $(STAMP)

# Jupyter refuses to start as root without --allow-root (Docker, cloud VMs, Colab's terminal).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# The kernels inherit the server's environment: the course's kernel settings
# (course_utils/core/kernel_env.py, the same ones the tests use) are set for the server.
lab: install
	env $$($(BIN)/python -m course_utils.core.kernel_env) \
		$(BIN)/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT) $(LAB_ARGS)

# Lint first (ruff: style and errors; import-linter: course_utils's layers), then the unit
# tests and every notebook, top to bottom, through nbval (fresh kernel each).
test: install lint
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 --durations=20 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The course's benchmark: runtime, peak memory and recorded numbers of every notebook, and the
# course-wide detection and segmentation tables (build/tables.md, copied into README.md).
report: install
	$(BIN)/python -m course_utils.instructor.report --notebooks notebooks --out build \
		--readme README.md

# The student version of every notebook (solutions stubbed, outputs cleared) into release/, after
# stamping pyproject's [project.urls] Repository into every set-up cell and Colab badge.
release: install
	$(BIN)/python -m course_utils.instructor.release --source notebooks --out release

# The course's helpers as a wheel in dist/: upload it next to a notebook on Colab (or to Drive's
# MyDrive) and the set-up cell installs it instead of the repository.
wheel: install
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

clean:
	rm -rf build dist .pytest_cache
