# Two commands do all set-up (see README):
#   make run    create .venv, install pinned dependencies, run the main job (edgevision bench, < 10 min on 2 cores)
#   make test   create .venv, install pinned dependencies, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch==2.13.0 in requirements.lock is the CPU wheel on our machines; a looser pin pulls CUDA wheels.

.PHONY: run test setup clean bench-runtimes bench-analysis bench-lut bench-training test-durability bench-roofline bench-features bench-quant bench-compress bench-search test-search-ray test-prune-durability

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/edgevision bench

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider

bench-analysis: $(STAMP)
	$(BIN)/python benchmarks/bench_analysis.py

bench-runtimes: $(STAMP)  # latency of every zoo model per runtime -> benchmarks/results/runtimes.md (resumable)
	$(BIN)/python benchmarks/bench_runtimes.py

bench-lut: $(STAMP)  # block latency tables vs 100 unseen networks, ort + eager -> benchmarks/results/lut.md (resumable, ~25 min)
	$(BIN)/python benchmarks/bench_lut.py --runtimes ort eager --threads 2 --train 50 --test 100

bench-training: $(STAMP)  # 4 zoo models on the embedded MNIST, tricks on/off -> benchmarks/results/training.md (resumable)
	$(BIN)/python benchmarks/bench_training.py

bench-features: $(STAMP)  # features_only backbones at output_stride 32/16/8, ort, 512 px -> benchmarks/results/features.md (resumable, ~8 min, 2 passes)
	$(BIN)/python benchmarks/bench_features.py

bench-roofline: $(STAMP)  # roofline bound vs measured + repeatability, 81 zoo models x {eager, ort} x 2 passes -> benchmarks/results/roofline.md (resumable, ~35 min idle)
	$(BIN)/python benchmarks/bench_roofline.py

bench-quant: $(STAMP)  # fp32 vs INT8 (ORT PTQ, mixed, OpenVINO/NNCF) for the zoo under 1 GMAC + float/PTQ/mixed/QAT top-1 of 4 trained models -> benchmarks/results/quant.md (resumable)
	$(BIN)/python benchmarks/bench_quant.py

bench-compress: $(STAMP)  # pruning coverage of the 81-model zoo (vs Torch-Pruning) + NetAdapt vs width multiplier -> benchmarks/results/compress.md (resumable; latency part needs an idle machine)
	$(BIN)/python benchmarks/bench_compress.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis

test-durability: $(STAMP)  # kill -9 of bench, lut build, train, deploy and sparsify at >= 10 random moments each (~15-20 min idle, estimated); see tests/test_durability.py
	EDGEVISION_DURABILITY=1 $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_durability.py

bench-search: $(STAMP)  # 7 search strategies x 300 s wall clock each vs random; zoo at the same latency; proxies -> benchmarks/results/search.md (resumable, ~60 min on 2 idle cores)
	$(BIN)/python benchmarks/bench_search.py

test-search-ray: $(STAMP)  # the one Ray test (starting Ray takes 10-30 s, so it is outside `make test`)
	EDGEVISION_RAY_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_search.py -k ray

# Reference suite (tests/reference): our imports of timm / torchvision state dicts give their logits.
# A venv of its own, so the package and the main suite never see timm or torchvision. torchvision's
# compiled extension is built against a CUDA torch and cannot load next to the CPU wheel; the model
# definitions do not need it, so this venv alone removes it (and the meta registrations that load it).
REF_VENV  := .venv-ref
REF_BIN   := $(REF_VENV)/bin
REF_STAMP := $(REF_VENV)/.installed

$(REF_STAMP): pyproject.toml requirements.lock
	test -x $(REF_BIN)/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(REF_BIN)/pip install --quiet --disable-pip-version-check --no-deps timm==1.0.31 torchvision==0.28.0
	$(REF_BIN)/pip install --quiet --disable-pip-version-check huggingface_hub==2.4.0 pyyaml==6.0.4
	site=$$($(REF_BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
	  rm -f $$site/torchvision/_C.so && : > $$site/torchvision/_meta_registrations.py
	$(REF_BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(REF_STAMP)

.PHONY: test-reference pretrained-table
test-reference: $(REF_STAMP)  # ~10 min on 2 cores; writes build/reference/*.json
	EDGEVISION_REFERENCE_TESTS=1 $(REF_BIN)/python -m pytest -p no:cacheprovider tests/reference

pretrained-table:  # build/reference/*.json (from test-reference) -> docs/pretrained.md
	$(BIN)/python benchmarks/pretrained_table.py build/reference docs/pretrained.md

.PHONY: bench-search-quick test-search-durability test-prune-durability prune-sweep bench-dense bench-dense-seg bench-dense-det bench-sr-depth bench-sr-depth-fast bench-sr bench-depth
bench-search-quick: $(STAMP)  # bench-search on a small space, 60 s per strategy: an end-to-end smoke test (~15 min), not a result
	$(BIN)/python benchmarks/bench_search.py --quick

test-search-durability: $(STAMP)  # kill -9 of a search at >= 10 random moments; the Optuna SQLite study resumes (~3-5 min)
	EDGEVISION_DURABILITY=1 $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_search_durability.py

test-prune-durability: $(STAMP)  # kill -9 of `edgevision prune --table` at a random moment after each new NetAdapt step, 10 times, resuming each time (~5 min idle, estimated; 14 min on the busy VM); PRUNE_KILLS=N to change
	EDGEVISION_DURABILITY=1 EDGEVISION_PRUNE_KILLS=$(or $(PRUNE_KILLS),10) $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_prune_durability.py

# Dense tasks (issues 17 and 18): each part resumable; run on an idle machine
bench-dense: $(STAMP)  # every segmentation + detection model: params/MACs vs published, ORT fp32 + INT8 latency at the task resolution, mIoU/mAP (fp32, INT8) after a fixed budget -> benchmarks/results/dense.md (resumable, ~45-60 min idle; per-task details: bench-dense-seg, bench-dense-det)
	$(BIN)/python benchmarks/bench_dense.py

bench-dense-seg: $(STAMP)  # segmentation models: params/MACs vs published, ORT fp32 at 520, mIoU on the embedded scenes -> benchmarks/results/dense_segmentation.md (resumable, ~40 min)
	$(BIN)/python benchmarks/bench_dense_seg.py

bench-dense-det: $(STAMP)  # SSDLite detectors: params vs published, ORT fp32 latency with NMS in the graph, mAP on the embedded scenes -> benchmarks/results/dense_detection.md (~30-40 min idle)
	$(BIN)/python benchmarks/bench_dense_det.py

bench-sr-depth: $(STAMP)  # issue 18's summary: SR (bench_sr, 2000 steps a model) + depth (depth.json reused when current) -> benchmarks/results/sr_depth.md (~1.5-2.5 h idle, estimate, +20 min when depth.json is stale; resumable)
	$(BIN)/python benchmarks/bench_sr_depth.py

bench-sr-depth-fast: $(STAMP)  # the same at full size on 500 SR training steps a model -> benchmarks/results/sr_depth.md (~50-60 min idle: 44.5 min measured before the 256x256-input timings were added; +20 min when depth.json is stale; trained models in runs/bench_sr are reused)
	$(BIN)/python benchmarks/bench_sr_depth.py --fast

bench-sr: $(STAMP)  # SR: params/mult-adds vs papers, PSNR/SSIM vs bicubic after 2000 steps, fp32 + INT8 fps at x4 -> benchmarks/results/sr.md (~1.5-2.5 h idle, estimate)
	$(BIN)/python benchmarks/bench_sr.py

bench-depth: $(STAMP)  # FCRN params vs paper, ORT fp32 latency at 228x304, depth metrics on procedural + motorcycle after a small training budget -> benchmarks/results/depth.md (resumable, ~40 min idle)
	$(BIN)/python benchmarks/bench_depth.py

.PHONY: bench-srgan
bench-srgan: $(STAMP)  # real-time SRGAN: L1 vs distillation vs DRN dual vs GAN at one budget, INT8 drop, fp32 fps -> benchmarks/results/srgan.md (58 min measured idle)
	$(BIN)/python benchmarks/bench_srgan.py

.PHONY: overfit-picodet
overfit-picodet: $(STAMP)  # PicoDet-S overfit check: 16 embedded scenes x 150 epochs at 128 px, train-set mAP (not an accuracy result) -> stdout; see benchmarks/results/picodet_overfit.md (~2 min idle, 1 thread)
	$(BIN)/python benchmarks/overfit_detector.py picodet_s_320 --size 128 --scenes 16 --epochs 150

.PHONY: test-det-overfit
test-det-overfit: $(STAMP)  # SSDLite must overfit 4 scenes (AP50 >= 0.9): a detection train/eval defect check, ~5-10 min idle
	$(BIN)/python benchmarks/check_det_overfit.py

.PHONY: bench-deploy-tasks
bench-deploy-tasks: $(STAMP)  # deploy of one trained model per dense task (seg, det, SR, depth) under its task metric budget -> benchmarks/results/deploy_tasks.md (resumable, ~80-100 min idle)
	$(BIN)/python benchmarks/bench_deploy_tasks.py

.PHONY: bench-roofline-bounds
bench-roofline-bounds: $(STAMP)  # every bound from roofline.jsonl's stored measurements, each scaled to its machine state; probes the peaks 3x (carm-v5) on an IDLE machine (~3 min)
	$(BIN)/python benchmarks/bench_roofline.py --no-measure --passes 1 --reprobe 2 --out benchmarks/results/roofline-bounds.md

.PHONY: prune-sweep
prune-sweep: $(STAMP)  # meta-device structural prune of all zoo models at 30% (no timing, ~15 min) -> benchmarks/results/prune_sweep.md
	PYTHONPATH=src $(BIN)/python benchmarks/prune_sweep.py

.PHONY: test-allinone-durability
test-allinone-durability: $(STAMP)  # kill -9 of `edgevision allinone` at 10 random moments after each new epoch/measurement: the result equals an uninterrupted run (~3-5 min idle, estimated); ALLINONE_KILLS=N to change
	EDGEVISION_DURABILITY=1 EDGEVISION_ALLINONE_KILLS=$(or $(ALLINONE_KILLS),10) $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_allinone_durability.py

.PHONY: test-seg-durability
test-seg-durability: $(STAMP)  # kill -9 of `train --task segmentation` at 10 random moments: each rerun resumes at its epoch, the result equals an uninterrupted run (~3-5 min idle, estimated); SEG_KILLS=N to change
	EDGEVISION_DURABILITY=1 EDGEVISION_SEG_KILLS=$(or $(SEG_KILLS),10) $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_segmentation_durability.py

.PHONY: test-det-durability
test-det-durability: $(STAMP)  # kill -9 of `train --task detection` at 10 random moments: each rerun resumes at its step, the result equals an uninterrupted run (~3-5 min idle); DET_KILLS=N to change
	EDGEVISION_DURABILITY=1 EDGEVISION_DET_KILLS=$(or $(DET_KILLS),10) $(BIN)/python -m pytest -p no:cacheprovider -s tests/test_detection_durability.py

.PHONY: bench-allinone
bench-allinone: $(STAMP)  # All-in-One (one weight set, ratios 0.25/0.5/0.75) vs K separately pruned, latency per emulated speed -> benchmarks/results/compress.md (idle machine, ~20-40 min)
	$(BIN)/python benchmarks/bench_compress.py --part allinone

.PHONY: lut-calibration
lut-calibration: $(STAMP)  # nominal vs empirical coverage of the latency predictor's 80% intervals on the stored bench-lut tables, no timing (resumable; est. ~10 min idle, 26 min on the loaded machine)
	$(BIN)/python benchmarks/lut_calibration.py
