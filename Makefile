# Two commands for a fresh machine:
#   make demo   install into .venv and run the whole pipeline offline
#   make test   install into .venv (with test extras) and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pip reinstalls only when the project's dependency files change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test install bench serve clean

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

# The demo's index as a web page and JSON API at http://127.0.0.1:8000/ (runs the demo
# first when it has not been run); options for `fashionrec serve` through ARGS.
serve: install
	@index=$$(ls -dt fashionrec-demo/index-*/ 2>/dev/null | head -n 1); \
	if [ -z "$$index" ]; then \
		$(BIN)/fashionrec demo && index=$$(ls -dt fashionrec-demo/index-*/ | head -n 1); \
	fi; \
	test -n "$$index" && exec $(BIN)/fashionrec serve "$${index%/}" $(ARGS)

bench: install
	$(BIN)/python benchmarks/embed.py
	$(BIN)/python benchmarks/query.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
