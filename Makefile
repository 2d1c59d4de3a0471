# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
.PHONY: demo test bench soak lint train-tempo

demo:
	@VENV=$$(scripts/bootstrap.sh | tail -n1) && "$$VENV/bin/python" -m sidepath.worker.dev.demo

test:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" scripts/test.sh

bench:
	@VENV=$$(scripts/bootstrap.sh --bench | tail -n1) && PATH="$$VENV/bin:$$PATH" python -m bench

lint:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" scripts/lint.sh

soak:
	@VENV=$$(scripts/bootstrap.sh --test | tail -n1) && PATH="$$VENV/bin:$$PATH" SIDEPATH_SOAK=1 SIDEPATH_WRITE_DOCS=1 \
	  python -m pytest -q tests/reliability

# Trains the tempo model's beat network from seed 0 on the CPU and rewrites models/tempo_net.safetensors
# (renders its corpus first; docs/tempo.md says how long it takes)
train-tempo:
	@VENV=$$(scripts/bootstrap.sh --bench | tail -n1) && PATH="$$VENV/bin:$$PATH" nice -n 5 python -m bench.tempo.train
