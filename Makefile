# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed
# here: Debian packages, the Python virtualenv (.venv), the Hadoop/HBase jars (Maven Central).
SHELL := /bin/bash
PY      := .venv/bin/python
PIP     := .venv/bin/pip
PACS    := .venv/bin/pacs
JARS    := .cache/jars
DEID_VERSION := 0.4.13
DEID_SHA256  := c8679a5ee7e985bdeef4f3bf9838f048cbd7d59d7084c145287b5d28a33184a8
DEID_RULES   := .cache/pydicom-deid/$(DEID_VERSION)
# OHIF v3, the standard DICOMweb viewer tests/e2e/test_ohif_viewer.py runs against the portal:
# the prebuilt app that the npm package ships (dist/), checked by its sha256, served as static files.
OHIF_VERSION := 3.13.2
OHIF_SHA256  := b189d3963bfc58e9394a9db8c7be75d07beb029ec211dbb126d47b62969dd3f1
OHIF_DIR     := .cache/ohif/$(OHIF_VERSION)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PACS_HOME ?= $(CURDIR)/.pacs
# The tests' own home (tests/conftest.py): `make test` never writes into the demo's.
TEST_HOME := $(CURDIR)/.pacs-test

.PHONY: install system venv jars ohif demo test test-unit test-integration audit bench clean-state down

install: system venv jars ohif

# Debian packages: installed only when a command they provide is missing.
system:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v storescu >/dev/null || missing="$$missing dcmtk"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v dcm2niix >/dev/null || missing="$$missing dcm2niix"; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: .venv/.installed $(DEID_RULES)/.extracted
.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

# pydicom deid's burned-in pixel rules (deid/pixel_rules.py reads them): only the recipe files and
# the licence of the pinned wheel, checked by its sha256. Not pip-installed: its top-level package
# is also named `deid` and would shadow ours.
$(DEID_RULES)/.extracted: | .venv/.installed
	rm -rf $(DEID_RULES) && mkdir -p $(DEID_RULES)/wheel
	$(PIP) download -q --no-deps --only-binary=:all: -d $(DEID_RULES)/wheel deid==$(DEID_VERSION)
	echo "$(DEID_SHA256)  $(DEID_RULES)/wheel/deid-$(DEID_VERSION)-py3-none-any.whl" | sha256sum -c --quiet
	$(PY) -c 'import sys, zipfile, pathlib; z = zipfile.ZipFile(sys.argv[1]); [pathlib.Path(sys.argv[2], pathlib.Path(n).name).write_bytes(z.read(n)) for n in z.namelist() if n.startswith("deid/data/deid.dicom") or n.endswith("/licenses/LICENSE")]' $(DEID_RULES)/wheel/deid-$(DEID_VERSION)-py3-none-any.whl $(DEID_RULES)
	rm -rf $(DEID_RULES)/wheel
	touch $@

ohif: $(OHIF_DIR)/.extracted
$(OHIF_DIR)/.extracted:
	rm -rf $(OHIF_DIR) && mkdir -p $(OHIF_DIR)/pack
	cd $(OHIF_DIR)/pack && npm pack -q --silent @ohif/app@$(OHIF_VERSION) >/dev/null
	echo "$(OHIF_SHA256)  $(OHIF_DIR)/pack/ohif-app-$(OHIF_VERSION).tgz" | sha256sum -c --quiet
	tar -xzf $(OHIF_DIR)/pack/ohif-app-$(OHIF_VERSION).tgz -C $(OHIF_DIR) --strip-components=1 package/dist package/LICENSE
	rm -rf $(OHIF_DIR)/pack
	touch $@

jars: $(JARS)/.hadoop $(JARS)/.hbase
$(JARS)/.hadoop: deploy/maven/hadoop/pom.xml
	rm -rf $(JARS)/hadoop
	mvn -q -B -f $< dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/hadoop
	touch $@
$(JARS)/.hbase: deploy/maven/hbase/pom.xml
	rm -rf $(JARS)/hbase
	mvn -q -B -f $< dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/hbase
	touch $@

demo: install
	$(PACS) demo

# Unit tests first (fast, no cluster), then everything that needs the real cluster and clients,
# each in its own process so no Spark session of one part leaks into the other.
test: install
	.venv/bin/lint-imports
	PACS_HOME=$(TEST_HOME) $(PY) -m pytest tests/unit -q
	PACS_HOME=$(TEST_HOME) $(PY) -m pytest tests/integration tests/e2e tests/security -q
	$(MAKE) test-multihost

# Several hosts in network namespaces (needs root and iproute2; fails, never skips, without
# them): embedded = false against a master, two workers and a service host, jobs on YARN
# (tests/multihost/). The stage builds and tears down its own topology beside the test cluster.
test-multihost: install
	@command -v ip >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iproute2; }
	$(PY) -m pytest tests/multihost -q

test-unit: venv
	PACS_HOME=$(TEST_HOME) $(PY) -m pytest tests/unit -q

test-integration: install
	PACS_HOME=$(TEST_HOME) $(PY) -m pytest tests/integration -q

# pip-audit of the pinned set (also part of `make test`: tests/security/test_dependencies.py)
audit: venv
	$(PY) -m pip_audit -r constraints.txt --no-deps --disable-pip -s pypi --progress-spinner off

bench: install
	@command -v Orthanc >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq orthanc; }
	$(PY) benchmarks/cluster_startup/bench_cluster_startup.py

down:
	-$(PACS) down

clean-state: down
	rm -rf $(PACS_HOME)
