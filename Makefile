# migpilot: `make demo` runs the main job, `make test` runs the whole suite. Both install what
# is missing first (Debian packages through apt-get as root; Swift packages through SwiftPM).
SHELL := /bin/bash
BUILD_PACKAGES := pkg-config liburing-dev libgsl-dev gcc python3
# The tests also boot a real QEMU (TCG) with a guest assembled by binutils, and talk QMP to
# migpilot's guests with PyPI's qemu.qmp client (installed under .build/python).
TEST_PACKAGES := qemu-system-x86 binutils
PYTHON_TEST_PACKAGES := qemu.qmp==0.0.6
SWIFT ?= swift

.PHONY: all deps build release test demo bench datasets whatif-table prediction-table clean

all: build

deps:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# One test at a time: many tests run real migrations, processes and timed links, and two cores
# shared by all of them at once make a starved thread look like a dead link.
test: deps
	@scripts/ensure-packages.sh $(TEST_PACKAGES)
	@scripts/ensure-python-packages.sh $(PYTHON_TEST_PACKAGES)
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

demo: release
	@scripts/demo.sh .build/release/migpilot

bench: release
	@Benchmarks/run.sh .build/release/migpilot

# Rewrites docs/whatif.md: shipped policies on every dataset at 1, 2.5, 5, 10 Gbit/s.
whatif-table: release
	@scripts/whatif-table.py .build/release/migpilot

# Prints Benchmarks/README.md's prediction table: every dataset replayed by the embedded engine
# under precopy and adaptive at 1 Gbit/s (7 runs each, median) against whatif, its calibration
# runs interleaved with the rows' (≈ 40 minutes).
prediction-table: release
	@scripts/prediction-vs-measurement.py .build/release/migpilot

# Re-records datasets/ from real programs (several minutes; installs the load generators).
datasets: release
	@datasets/record.sh .build/release/migpilot

clean:
	rm -rf .build
