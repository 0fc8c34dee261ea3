# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
# Test processes (pytest-xdist): one per core by default; WORKERS=0 runs the suite in one process.
WORKERS ?= auto

.PHONY: demo test lint format bench clean translations ralph

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed  ## build the demo database (SQLite) and serve it on http://127.0.0.1:5000
	$(BIN)/cat-engine demo --port $(PORT)

# ralph's LRS for the xAPI-out tests, in a virtualenv of its own (it pins an older click).
ralph: .ralph/bin/ralph
.ralph/bin/ralph:
	$(PYTHON) -m venv .ralph
	.ralph/bin/python -m pip install --quiet 'ralph-malph[cli,lrs]>=5.1,<6' requests

test: $(VENV)/.installed-test ralph  ## lint, then the whole test suite (in parallel: WORKERS=auto)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(WORKERS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract the marked strings, merge them into each language's .po, compile the .mo files.
# The .mo files are committed, so a fresh clone has them without running this.
TRANSLATIONS := delivery_ui/translations
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 --no-location \
	    --sort-output --project cat-engine -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
	    --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile --statistics -d $(TRANSLATIONS)

$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

bench: $(VENV)/.installed-bench  ## side-by-side benchmarks with the peers (catsim, mirt)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .ralph instance .pytest_cache .ruff_cache .hypothesis *.egg-info test-artifacts
