# Every target works on a fresh machine with Python 3.10+: the first one run creates
# .venv and installs requirements.txt and the package (editable) into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SITE_STAMP := $(VENV)/.site-installed

.PHONY: setup test notebooks gradcheck lint bench bench-efficiency bench-train bench-recurrences bench-mqar lab student \
        site test-site site-screenshot clean

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
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)  ## attention vs its matrix-product floor and torch SDPA on 1, 2, all cores
	$(BIN)/python benchmarks/attention_bench.py  # tables, targets, figures/bench_breakdown.png

bench-efficiency: $(STAMP)  ## naive vs tiled vs linear vs sliding window (tables + figures)
	$(BIN)/python benchmarks/efficiency_bench.py

bench-train: $(STAMP)  ## training-step tokens/s: NumPy hand backward vs PyTorch eager
	$(BIN)/python benchmarks/train_bench.py

bench-recurrences: $(STAMP)  ## recurrent vs parallel vs chunkwise forms against N (table + figure)
	$(BIN)/python benchmarks/recurrence_bench.py

bench-mqar: $(STAMP)  ## MQAR accuracy vs key-value pairs for seven mixers (table + figure)
	$(BIN)/python benchmarks/mqar_bench.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

student: $(STAMP)  ## the student kit in student/: notebooks with stubs, a wheel, a README
	$(BIN)/python -m attention_np.exercises build student

# The course as an offline website (Sphinx + myst-nb + MathJax bundled from npm), always
# built from clean (viewcode pages go stale in incremental builds). Needs npm.
$(SITE_STAMP): $(STAMP) requirements-site.txt
	$(BIN)/python -m pip install --quiet -r requirements-site.txt
	touch $(SITE_STAMP)

site: $(SITE_STAMP)  ## _site/: lessons, exercises (student view), API reference, search
	rm -rf _site build/site-src build/site-doctrees jupyter_execute
	$(BIN)/python docs/bundle_mathjax.py build/site-mathjax
	$(BIN)/python docs/stage_site.py build/site-src
	$(BIN)/python -m sphinx -W --keep-going -q -b html -c docs -d build/site-doctrees \
		build/site-src _site
	rm -rf jupyter_execute
	@echo "site: _site/ is ready; serve it with: python -m http.server -d _site"

test-site: $(SITE_STAMP)  ## every page of _site/ in headless chromium (after make site)
	ATTENTION_NP_SITE_TESTS=full $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider \
		tests/site

site-screenshot: $(SITE_STAMP)  ## figures/site_lesson.png, the README's view of the site
	$(BIN)/python tests/site/sitecheck.py screenshot _site notebooks/03_masks.html \
		figures/site_lesson.png "#bidirectional-and-causal-attention"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache _site build jupyter_execute

.PHONY: bench-ttt
bench-ttt: $(STAMP)  ## TTT-Linear primal vs dual form (writes benchmarks/results/ttt_forms.json)
	$(BIN)/python benchmarks/ttt_forms_bench.py

.PHONY: bench-decoding
bench-decoding: $(STAMP)  ## lesson 11's timings -> benchmarks/results/decoding.json
	$(BIN)/python benchmarks/decoding_bench.py

.PHONY: bench-ring
bench-ring: $(STAMP)  ## ring attention over MPI: timeline, overlap probe, memory per rank (JSON for lesson 17)
	$(BIN)/python benchmarks/ring_timeline_bench.py

.PHONY: bench-lessons-efficient
bench-lessons-efficient: $(STAMP)  ## timings and peak memory for lessons 13-16 -> benchmarks/results/1[3-6]_*.json (a few minutes)
	$(BIN)/python benchmarks/lessons_efficient_bench.py
	$(BIN)/python benchmarks/lessons_efficient_memory.py
