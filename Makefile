# Every target works on a fresh machine with Python 3.10+: the first one run creates
# .venv and installs requirements.txt and the package (editable) into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test notebooks gradcheck lint bench bench-efficiency bench-recurrences bench-mqar lab student clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)  ## every test (package, notebooks, exercises)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests

notebooks: $(STAMP)  ## the main job: gradient report, execute notebooks, regenerate figures/
	$(BIN)/python -m attention_np gradcheck
	$(BIN)/python tools/run_notebooks.py notebooks/[0-9][0-9]_*.ipynb

gradcheck: $(STAMP)
	$(BIN)/python -m attention_np gradcheck

lint: $(STAMP)
	$(BIN)/ruff check attention_np tests benchmarks tools
	$(BIN)/ruff format --check attention_np tests benchmarks tools

bench: $(STAMP)  ## attention vs the BLAS floor (prints a table)
	$(BIN)/python benchmarks/attention_bench.py

bench-efficiency: $(STAMP)  ## naive vs tiled vs linear vs sliding window (tables + figures)
	$(BIN)/python benchmarks/efficiency_bench.py

bench-recurrences: $(STAMP)  ## recurrent vs parallel vs chunkwise forms against N (table + figure)
	$(BIN)/python benchmarks/recurrence_bench.py

bench-mqar: $(STAMP)  ## MQAR accuracy vs key-value pairs for seven mixers (table + figure)
	$(BIN)/python benchmarks/mqar_bench.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

student: $(STAMP)  ## student copies of the exercise notebooks in student/
	$(BIN)/python -m attention_np.exercises build student

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
