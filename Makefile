# LLM-Tor — see README.md. `make demo` and `make test` do their own set-up.
.PHONY: demo test test-only build lint bench setup clean images

demo: build
	node proxy/dist/src/demo.js

test: setup lint test-only

test-only: build
	@rm -f test-artifacts/test-summary.txt
	npx c8 --config .c8rc.json node scripts/run-tests.mjs; status=$$?; echo; cat test-artifacts/test-summary.txt 2>/dev/null || echo "tests: 0 passed, 1 failed"; exit $$status

setup:
	bash scripts/setup.sh

build:
	bash scripts/setup.sh --node-only
	npm run build

lint:
	bash scripts/setup.sh --node-only
	npx eslint .

bench:
	bash scripts/setup.sh --packages
	npm run build
	npm run bench --workspaces --if-present

# OCI archives of the images, no container engine needed (docs/deploy.md, "Images"):
# dist/images/<image>-<tag>.oci.tar and dist/images/images.json. `make images IMAGES="proxy tor"` for some.
images:
	bash scripts/setup.sh --node-only
	node scripts/images/build.mjs $(IMAGES)

clean:
	npx tsc -b --clean
	rm -rf coverage test-artifacts dist
