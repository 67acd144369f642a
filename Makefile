# virtops.libvirt — everything runs through these targets (see README.md).
#   make demo         install what is missing, bring up a lab of two hypervisors, run playbooks/demo.yml against it
#   make demo-clean   remove what make demo made (VMs, their storage, the base image, pool, network, the export)
#   make test         lint + sanity + unit + integration + molecule
#   make lint | sanity | unit | integration | molecule   one part only
#   make docs         the HTML docsite (antsibull-docs + Sphinx) in .build/docs/build/html; not part of make test
#   make lab-up | lab-down | lab-status        the lab alone
#   make guest-image  the cached, bootable Debian guest image for lab VMs (prints its directory)
#   make bench        benchmarks (benchmarks/README.md); SCENARIOS="vm_overhead ..." for some
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
BUILD_DIR   ?= $(ROOT)/.build
# ansible-test needs the collection at .../ansible_collections/virtops/libvirt and outside this git
# checkout (inside it, the git-ignored copy would make every sanity target "skipped").
STAGE       ?= $(or $(TMPDIR),/tmp)/virtops-libvirt-stage-$(shell printf %s '$(ROOT)' | sha1sum | cut -c1-10)
COLLECTION  := $(STAGE)/ansible_collections/virtops/libvirt
INSTALLED   := $(BUILD_DIR)/installed
LAB         := $(ROOT)/tests/lab/lab.sh
VENV_FILE   := $(BUILD_DIR)/venv
PYTHON_VER   = $(shell $(VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV         = $(shell cat $(VENV_FILE))
# antsibull-docs, Sphinx and its theme: a venv of their own (docs/requirements.txt), for make docs and make lint
DOCS_VENV_FILE := $(BUILD_DIR)/docs-venv
DOCS_VENV     = $(shell cat $(DOCS_VENV_FILE))
export ANSIBLE_FORCE_COLOR ?= 0
export ANSIBLE_NOCOLOR ?= 1

.PHONY: help deps docs-deps docs stage build install demo demo-clean test lint sanity unit integration molecule lab-up lab-down lab-status guest-image bench clean

help:
	@sed -n '/^#/!q;p' Makefile

$(BUILD_DIR):
	@mkdir -p $(BUILD_DIR)

deps: | $(BUILD_DIR)
	@tests/tools/bootstrap.sh > $(VENV_FILE).tmp && mv $(VENV_FILE).tmp $(VENV_FILE)
	@echo "venv: $$(cat $(VENV_FILE))"

docs-deps: | $(BUILD_DIR)
	@tests/tools/docs-venv.sh > $(DOCS_VENV_FILE).tmp && mv $(DOCS_VENV_FILE).tmp $(DOCS_VENV_FILE)

stage: | $(BUILD_DIR)
	@tests/tools/stage.sh $(STAGE) >/dev/null

# the collection tarball, built and installed the way users get it
build: deps stage
	@rm -f $(BUILD_DIR)/virtops-libvirt-*.tar.gz
	@cd $(COLLECTION) && $(VENV)/bin/ansible-galaxy collection build --force --output-path $(BUILD_DIR) >/dev/null
	@ls $(BUILD_DIR)/virtops-libvirt-*.tar.gz

install: build
	@rm -rf $(INSTALLED)
	@$(VENV)/bin/ansible-galaxy collection install --force -p $(INSTALLED) $(BUILD_DIR)/virtops-libvirt-*.tar.gz >/dev/null
	@echo "installed into $(INSTALLED)"

# benchmarks/playbooks/community: community.libvirt's modules, which only the benchmarks' `ansible` venv has
lint: deps docs-deps stage
	cd $(COLLECTION) && ANSIBLE_COLLECTIONS_PATH=$(STAGE) PATH=$(VENV)/bin:$$PATH ansible-lint --offline --profile production \
	    --exclude benchmarks/playbooks/community
	$(DOCS_VENV)/bin/python tests/tools/docsite.py lint $(STAGE)
	$(VENV)/bin/python -m benchmarks --check
	bash -n tests/lab/*.sh tests/tools/*.sh tests/integration/*.sh .ci/run
	$(VENV)/bin/python tests/tools/payload.py --summary --check tests/payload-budget.yml
	@if command -v shellcheck >/dev/null; then shellcheck tests/lab/*.sh tests/tools/*.sh tests/integration/*.sh .ci/run; fi

sanity: deps stage
	cd $(COLLECTION) && $(VENV)/bin/ansible-test sanity --venv --python $(PYTHON_VER) --color no 2>&1 | tee $(BUILD_DIR)/sanity.log
	@if grep -q 'All targets skipped' $(BUILD_DIR)/sanity.log; then echo 'sanity: every target was skipped: nothing was tested' >&2; exit 1; fi
	@echo "sanity: $$(grep -c '^Running sanity test' $(BUILD_DIR)/sanity.log) tests ran"

unit: deps stage
	cd $(COLLECTION) && PYTHONPATH=$(STAGE) $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit

# INTEGRATION_JOBS lanes of targets at once, each against a lab of its own (tests/integration/run.sh)
INTEGRATION_JOBS ?= 2
integration: install
	VENV=$(VENV) COLLECTIONS_PATH=$(INSTALLED) INTEGRATION_JOBS=$(INTEGRATION_JOBS) tests/integration/run.sh $(TARGETS)

# the roles' molecule scenarios (extensions/molecule) against a lab of two hypervisors; SCENARIOS=... for some
molecule: install
	VENV=$(VENV) COLLECTIONS_PATH=$(INSTALLED) tests/tools/molecule.sh $(SCENARIOS)

lab-up: deps
	$(LAB) up

lab-down:
	$(LAB) down

lab-status:
	$(LAB) status

# the docsite (docs/docsite and every plugin's and role's docs), offline, warnings as errors (tests/tools/docsite.py)
docs: docs-deps stage
	$(DOCS_VENV)/bin/python tests/tools/docsite.py build $(STAGE) $(BUILD_DIR)/docs

# a cached, bootable Debian guest image (tests/lab/README.md); root, ~3 min the first time
guest-image:
	@tests/lab/guest-image.sh build

# two lab hypervisors, three guests booting the cached Debian image under TCG (the image is built the
# first time, ~3 min); 7-11 min on 2 busy cores, most of it the guests' first boot and cloud-init
demo: install
	$(LAB) up 2
	$(LAB) inventory $(BUILD_DIR)/lab-inventory.yml
	@image=$$(tests/lab/guest-image.sh build) && cd $(ROOT) && ANSIBLE_COLLECTIONS_PATH=$(INSTALLED) \
	    $(VENV)/bin/ansible-playbook -i $(BUILD_DIR)/lab-inventory.yml -e demo_image_dir=$$image playbooks/demo.yml

demo-clean: install
	$(LAB) inventory $(BUILD_DIR)/lab-inventory.yml
	@image=$$(tests/lab/guest-image.sh build) && cd $(ROOT) && ANSIBLE_COLLECTIONS_PATH=$(INSTALLED) \
	    $(VENV)/bin/ansible-playbook -i $(BUILD_DIR)/lab-inventory.yml -e @playbooks/vars/demo.yml \
	    -e demo_image_dir=$$image playbooks/teardown.yml
	rm -rf /var/tmp/virtops-demo-export

# integration and molecule run side by side (separate labs); each one's output comes when it ends
test: lint sanity unit
	@$(MAKE) --no-print-directory --output-sync=target -j2 integration molecule

# benchmarks (not part of make test; as root, on an idle machine, see benchmarks/README.md); SCENARIOS=... for some
bench: deps
	cd $(ROOT) && $(VENV)/bin/python -m benchmarks $(SCENARIOS)

clean:
	-$(LAB) down
	rm -rf $(BUILD_DIR) $(STAGE)
