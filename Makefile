# Lambda runs python3.13 and Chalice packages for the interpreter it runs under: use 3.13 when this machine has
# it (on PATH, or under pyenv), else python3 (whose version then becomes the packaged runtime; see README).
PYTHON ?= $(firstword $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null; \
	ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3 2>/dev/null | sort -V | tail -1) python3)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import platform; print(platform.python_version())')
VENV := .venv
BIN := $(VENV)/bin
# The stamp names the interpreter's version, so switching interpreters rebuilds the virtualenv from scratch.
STAMP := $(VENV)/.installed-python$(PYTHON_VERSION)
# axe-core for the browser tests' accessibility checks, pinned by tests/js/package-lock.json.
NODE_STAMP := tests/js/node_modules/.installed
# The client package's toolchain (TypeScript, openapi-typescript, vitest, React for the hook tests), pinned by
# client/package-lock.json.
CLIENT_STAMP := client/node_modules/.installed
# The client package as a front end gets it (`npm pack`'s tarball), and the example app installed from it.
CLIENT_VERSION = $(shell node -p "require('./client/package.json').version" 2>/dev/null)
CLIENT_TARBALL = client/3d-ultra-upload-client-$(CLIENT_VERSION).tgz
CLIENT_SOURCES := $(shell find client/src client/scripts -type f 2>/dev/null) client/package.json \
	client/package-lock.json client/tsconfig.json client/tsconfig.build.json
EXAMPLE_DIR := examples/react-vite
EXAMPLE_STAMP := $(EXAMPLE_DIR)/node_modules/.installed

STAGE ?= prod

.PHONY: dev prod-local test unit example-lock system-dev system-prod-local system-test package deploy sweep bench mutation client-pack example clean print-python

$(STAMP): requirements.txt requirements-dev.txt
	@if [ -x $(BIN)/python ] && [ ! -e $(STAMP) ]; then echo "rebuilding $(VENV) for Python $(PYTHON_VERSION)"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(NODE_STAMP): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(CLIENT_STAMP): client/package.json client/package-lock.json
	npm ci --prefix client --no-audit --no-fund --loglevel=error
	touch $(CLIENT_STAMP)

$(CLIENT_TARBALL): $(CLIENT_STAMP) $(CLIENT_SOURCES)
	cd client && npm pack --loglevel=error >/dev/null

# npm ci installs what the lockfile pins, and the package from the tarball just packed: the lockfile names the
# tarball without a hash of its bytes, which change with every change to client/src (see `make example-lock`).
$(EXAMPLE_STAMP): $(CLIENT_TARBALL) $(EXAMPLE_DIR)/package.json $(EXAMPLE_DIR)/package-lock.json
	cd $(EXAMPLE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## example-lock: rewrite the example's lockfile after changing its package.json, keeping the local tarball unpinned
example-lock: $(CLIENT_TARBALL)
	cd $(EXAMPLE_DIR) && npm install --package-lock-only --no-audit --no-fund --loglevel=error
	node client/scripts/unpin-local-lock.mjs $(EXAMPLE_DIR)/package-lock.json

## example: pack client/, install the example from the tarball, tsc --strict and vite build it (examples/react-vite/dist)
example: $(EXAMPLE_STAMP)
	cd $(EXAMPLE_DIR) && npm run build --silent

# The system packages each stack needs (PostgreSQL, PgBouncer, Chromium, Node.js, npm), from one list that
# .ci/run uses too: installed when run as root, otherwise named in one apt-get line, and make stops.
system-dev system-prod-local system-test:
	@devstack/system-packages $(@:system-%=%)

## dev: start PostgreSQL and S3 locally and serve the API on http://127.0.0.1:$${PORT:-8000}
dev: system-dev $(STAMP)
	$(BIN)/python -m devstack

## prod-local: the production topology: front end, API under its stage prefix, storage (three origins), SSM, TLS PostgreSQL behind PgBouncer
prod-local: system-prod-local $(STAMP)
	$(BIN)/python -m devstack.prod_local

## test: run the whole suite against a local stack the fixtures start
test: system-test $(STAMP) $(NODE_STAMP) $(CLIENT_STAMP) example
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## unit: only the fast tests that do no I/O
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## package: chalice package --stage $(STAGE) into build/$(STAGE) with the operations resources, cfn-lint, secret scan
## (PACKAGE_ARGS=--allow-placeholder-origins for a build that is only checked, as CI does)
package: $(STAMP)
	$(BIN)/python -m ops.package --stage $(STAGE) $(PACKAGE_ARGS)

## deploy: STAGE=prod REGION=eu-central-1 ARTIFACT_BUCKET=... DEPLOY_ARGS="--alarm-email ADDRESS [--dry-run]" (or "--rollback VERSION")
deploy: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m ops.deploy --stage $(STAGE) --region "$(REGION)" --artifact-bucket "$(ARTIFACT_BUCKET)" $(DEPLOY_ARGS)

## sweep: STAGE=prod REGION=eu-central-1: run the deployed abandoned-upload sweep now (fails if it failed)
sweep: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m ops.sweep --stage $(STAGE) --region "$(REGION)"

## bench: round trips, cold start, warm overhead, size and memory against their floors (table + build/bench.json)
bench: $(STAMP)
	$(BIN)/python -m bench.run

## mutation: mutmut over chalicelib against tests/unit; score per module and survivors (MUTATION_ARGS=--threshold 90)
mutation: $(STAMP)
	$(BIN)/python -m ops.mutation_report $(MUTATION_ARGS)

## print-python: the interpreter the virtualenv is built with, and its version
print-python:
	@echo $(PYTHON) $(PYTHON_VERSION)

## client-pack: build the client package's tarball (client/3d-ultra-upload-client-*.tgz) for a front end to install
client-pack: $(CLIENT_STAMP)
	cd client && npm pack

clean:
	rm -rf $(VENV) .pytest_cache build test-output mutants tests/js/node_modules client/node_modules client/dist \
		client/*.tgz $(EXAMPLE_DIR)/node_modules $(EXAMPLE_DIR)/dist
