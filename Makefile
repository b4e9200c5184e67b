# Two commands for a fresh machine:
#   make demo   install into .venv and run the whole pipeline offline
#   make test   install into .venv (with test extras) and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pip reinstalls only when the project's dependency files change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/fashionrec demo $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/python benchmarks/embed.py
	$(BIN)/python benchmarks/query.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
