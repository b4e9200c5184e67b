# Two commands for a fresh machine:
#   make demo   install into .venv and run the whole pipeline offline
#   make test   install into .venv (with test extras) and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pip reinstalls only when the project's dependency files change. `make demo` installs the
# base package only; `make test` adds the test tools and the extras the tests exercise
# (a Milvus server and client, Ray).
DEPS := $(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-base-$(DEPS)
TEST_STAMP := $(VENV)/.installed-test-$(DEPS)

.PHONY: demo test install bench serve clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	rm -f $(VENV)/.installed-base-*
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,milvus,ray]'
	rm -f $(VENV)/.installed-test-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/fashionrec demo $(ARGS)

test: $(TEST_STAMP)
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
