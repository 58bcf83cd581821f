# b24mail — the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist processes for the suite: `auto` is one per CPU; 0 runs it in this process.
PYTEST_WORKERS ?= auto
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run worker test test-fast lint typecheck pytest bench lock clean

# A new venv's bundled setuptools predates PEP 639 (`license = "MIT"`): it is upgraded first,
# so the editable install builds at once, without build isolation. The -W hides setuptools'
# ten-line notice that an editable install is editable.
$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -W "ignore:Editable installation:UserWarning" -m pip install --quiet \
		--no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Run the bot on the embedded default (SQLite file ./b24mail.db, migrations applied).
run: install
	$(BIN)/b24mail serve

worker: install
	$(BIN)/b24mail worker

## Lint, type-check and run the whole test suite (SQLite and PostgreSQL; with no server on
## 127.0.0.1:5432 and no B24MAIL_TEST_PG_ADMIN_URL, a throwaway one is started for the run).
test: install lint typecheck pytest

## The edit-run loop: SQLite only, no slow tests, no lint.
test-fast: install
	B24MAIL_SKIP_POSTGRES=1 $(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow and not postgres" \
		$(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check bot tests bench alembic
	$(BIN)/ruff format --check bot tests bench alembic

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

## Re-pin the dependencies from pyproject.toml into the lock files.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip
	.lockenv/bin/pip install --quiet .
	.lockenv/bin/pip freeze --exclude b24mail > requirements.lock
	.lockenv/bin/pip install --quiet ".[dev]"
	.lockenv/bin/pip freeze --exclude b24mail > requirements-dev.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
