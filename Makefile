# Two commands on a fresh clone:  make run  (install and serve)  and  make test  (install and test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1:8000

.PHONY: run run-uvicorn run-hypercorn run-granian test lint

# --noreload: runserver's autoreloader kills its serving child at once on SIGTERM, and
# gives it only 0.25 s on Ctrl-C, so connections would end with no close frame and no trace.
run: $(VENV)/installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python manage.py runserver $(HOST) --noreload

# The explorer under the other servers it knows: the same page, endpoints and trace.
run-uvicorn: $(VENV)/installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python -m uvicorn explorer.asgi:application --host $(word 1,$(subst :, ,$(HOST))) --port $(word 2,$(subst :, ,$(HOST))) --lifespan off

run-hypercorn: $(VENV)/installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python -m hypercorn explorer.asgi:application --bind $(HOST)

run-granian: $(VENV)/installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python -m granian --interface asginl --host $(word 1,$(subst :, ,$(HOST))) --port $(word 2,$(subst :, ,$(HOST))) explorer.asgi:application

test: $(VENV)/installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/installed-test: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@ $(VENV)/installed  # the test requirements include the runtime ones
