PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core for the browser tests' accessibility checks, pinned by tests/js/package-lock.json.
NODE_STAMP := tests/js/node_modules/.installed
# The client package's toolchain (TypeScript, openapi-typescript, vitest, React for the hook tests), pinned by
# client/package-lock.json.
CLIENT_STAMP := client/node_modules/.installed

STAGE ?= prod

.PHONY: dev prod-local test unit package deploy bench mutation client-pack clean

$(STAMP): requirements.txt requirements-dev.txt
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

## dev: start PostgreSQL and S3 locally and serve the API on http://127.0.0.1:$${PORT:-8000}
dev: $(STAMP)
	$(BIN)/python -m devstack

## prod-local: the production topology: front end, API under its stage prefix, storage (three origins), SSM, TLS PostgreSQL behind PgBouncer
prod-local: $(STAMP)
	$(BIN)/python -m devstack.prod_local

## test: run the whole suite against a local stack the fixtures start
test: $(STAMP) $(NODE_STAMP) $(CLIENT_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## unit: only the fast tests that do no I/O
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## package: chalice package --stage $(STAGE) into build/$(STAGE) with the operations resources, cfn-lint, secret scan
## (PACKAGE_ARGS=--allow-placeholder-origins for a build that is only checked, as CI does)
package: $(STAMP)
	$(BIN)/python -m ops.package --stage $(STAGE) $(PACKAGE_ARGS)

## deploy: STAGE=prod REGION=eu-central-1 ARTIFACT_BUCKET=... [DEPLOY_ARGS="--dry-run" or "--rollback VERSION"]
deploy: $(STAMP)
	$(BIN)/python -m ops.deploy --stage $(STAGE) --region "$(REGION)" --artifact-bucket "$(ARTIFACT_BUCKET)" $(DEPLOY_ARGS)

## bench: round trips, cold start, warm overhead, size and memory against their floors (table + build/bench.json)
bench: $(STAMP)
	$(BIN)/python -m bench.run

## mutation: mutmut over chalicelib against tests/unit; score per module and survivors (MUTATION_ARGS=--threshold 90)
mutation: $(STAMP)
	$(BIN)/python -m ops.mutation_report $(MUTATION_ARGS)

## client-pack: build the client package's tarball (client/3d-ultra-upload-client-*.tgz) for a front end to install
client-pack: $(CLIENT_STAMP)
	cd client && npm pack

clean:
	rm -rf $(VENV) .pytest_cache build test-output mutants tests/js/node_modules client/node_modules client/dist
