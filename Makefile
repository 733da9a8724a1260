# Two commands set up everything: `make lab` (work) and `make test` (check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install install-instructor install-browser lab lab-instructor lint test test-browser \
	report release wheel clean

# The virtual environment, with the course installed in editable mode. A student's install
# (`make install`, `make lab`) has the dev extra: JupyterLab, nbval, pytest. The instructor's
# adds nbgrader (the release; `make test` checks it); the browser test adds Playwright. Each
# install also stands for the smaller ones (its stamp and theirs are touched).
define venv_install
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(1)]"
	touch $@ $(2)
endef

STUDENT_EXTRAS := dev
INSTRUCTOR_EXTRAS := dev,instructor
BROWSER_EXTRAS := dev,instructor,browser

$(STAMP): pyproject.toml
	$(call venv_install,$(STUDENT_EXTRAS))
$(STAMP)-instructor: pyproject.toml
	$(call venv_install,$(INSTRUCTOR_EXTRAS),$(STAMP))
$(STAMP)-browser: pyproject.toml
	$(call venv_install,$(BROWSER_EXTRAS),$(STAMP) $(STAMP)-instructor)

install: $(STAMP)
install-instructor: $(STAMP)-instructor
install-browser: $(STAMP)-browser
	@$(BIN)/python -c 'import sys; sys.path.insert(0, "tests"); import lab_browser as lb; \
		lb.find_chromium() or print("Chromium is missing:", lb.INSTALL_HINT)'

# tools/lab.py: the kernels' environment (course_utils/core/kernel_env.py, the same one the
# tests use), --allow-root only as root, and for students no nbgrader menu (tools/student_lab/).
lab: install
	$(BIN)/python tools/lab.py --notebook-dir=notebooks $(LAB_ARGS)

lab-instructor: install-instructor
	$(BIN)/python tools/lab.py --instructor --notebook-dir=notebooks $(LAB_ARGS)

# Lint first (ruff: style and errors; import-linter: course_utils's layers), then the unit
# tests on two processes (pytest-xdist), then every notebook, top to bottom, through nbval
# (one at a time, a fresh kernel each, so their timings are their own).
test: install-instructor lint
	$(BIN)/python -m pytest tests -n 2 --durations=10 $(PYTEST_ARGS)
	$(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 --durations=20 $(PYTEST_ARGS)

# Every explorer driven in headless Chromium through JupyterLab (tests/test_browser.py);
# screenshots and the controls moved go to build/browser/.
test-browser: install-browser
	$(BIN)/python -m pytest tests/test_browser.py --browser -p no:xdist --durations=20 \
		$(PYTEST_ARGS)

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
release: install-instructor
	$(BIN)/python -m course_utils.instructor.release --source notebooks --out release

# The course's helpers as a wheel in dist/: upload it next to a notebook on Colab (or to Drive's
# MyDrive) and the set-up cell installs it instead of the repository.
wheel: install
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

clean:
	rm -rf build dist .pytest_cache
