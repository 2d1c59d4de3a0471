# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
.PHONY: demo test bench soak lint

demo:
	@VENV=$$(scripts/bootstrap.sh | tail -n1) && "$$VENV/bin/python" -m sidepath.worker.demo

test:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" scripts/test.sh

bench:
	@VENV=$$(scripts/bootstrap.sh --bench | tail -n1) && PATH="$$VENV/bin:$$PATH" python -m bench

lint:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" scripts/lint.sh

soak:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" SIDEPATH_SOAK=1 SIDEPATH_WRITE_DOCS=1 \
	  python -m pytest -q tests/reliability
