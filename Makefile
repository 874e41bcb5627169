# LLM-Tor — see README.md. `make demo` and `make test` do their own set-up.
.PHONY: demo test test-only build lint bench setup clean

demo:
	bash scripts/setup.sh --node-only
	npm run build
	node proxy/dist/src/demo.js

test: setup lint test-only

test-only: build
	npx c8 --config .c8rc.json node scripts/run-tests.mjs

setup:
	bash scripts/setup.sh

build:
	npm run build

lint:
	npx eslint .

bench: build
	npm run bench --workspaces --if-present

clean:
	npx tsc -b --clean
	rm -rf coverage test-artifacts
