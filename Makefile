# ngx_http_postback_module: build, test and demo against Debian's nginx-dev.
#
#   make         build build/ngx_http_postback_module.so
#   make test    unit tests, fuzz smoke run, prove t/*.t against real nginx
#   make demo    nginx + sample checkout + receivers from conf.d/, a few
#                checkouts, what the receivers got and the status page
#   make bench   side-by-side figures against ../shared/bench-peers
#   make deb     the libnginx-mod-http-postback Debian package
#   make test-nginx NGINX_VERSION=1.30.4
#                prove t/*.t against nginx.org's nginx of that version,
#                built with the module (`make build-nginx`: the build only)
#
# Each target installs the Debian packages it lacks (as root, with apt-get).

NGX_SRC   ?= /usr/share/nginx/src
BUILD     := $(CURDIR)/build
MODULE    := $(BUILD)/ngx_http_postback_module.so
FUZZ_SECONDS ?= 10

# what the module, its tests and its demo need on Debian bookworm
PACKAGES  := nginx nginx-dev libcurl4-openssl-dev libjansson-dev libssl-dev \
             zlib1g-dev libpcre2-dev gcc make clang libclang-rt-14-dev \
             perl openssl

SOURCES   := config $(wildcard ngx_http_postback_module/*.[ch])

CC_OPT    := -g -O2 -fPIC -fstack-protector-strong -Wformat \
             -Werror=format-security -D_FORTIFY_SOURCE=2
LD_OPT    := -Wl,-z,relro -Wl,-z,now -fPIC

ASAN_BUILD := $(CURDIR)/build-asan

# the baselines of ../shared/bench-peers, run beside the module
BENCH_PEERS   ?= $(CURDIR)/../shared/bench-peers
BENCH_SECONDS ?= 5
BENCH_CONNS   ?= 32
BENCH_PACKAGES := wrk libnginx-mod-http-lua lua-cjson

# `make deb`: built as Debian builds its nginx modules (dh-sequence-nginx);
# t/16-deb.t checks it with lintian
DEB_PACKAGES := debhelper dpkg-dev build-essential lintian
DEB_DIR   := $(BUILD)/deb

# the status page is tested in a real browser, proxy= through a real
# forward proxy (t/27 runs its own tinyproxy instances: tinyproxy-bin,
# the program without the service that the tinyproxy package starts),
# https:// receivers with IO::Socket::SSL (the harness's TLS servers)
TEST_PACKAGES := chromium chromium-driver tinyproxy-bin libio-socket-ssl-perl

# `make build-nginx` / `make test-nginx`: nginx.org's nginx, built from
# $(VENDOR)/nginx-$(NGINX_VERSION).tar.gz into build/nginx-VERSION/ with the
# HTTP modules nginx.org's packages have, then the module against it, as a
# user of those packages builds it
NGINX_VERSION ?= 1.30.4
# `modules` alone: a check that the module compiles against that nginx
NGINX_TARGETS ?= binary modules
VENDOR        ?= $(CURDIR)/../shared/vendor
NGINX_JOBS    ?= 2
NGINX_DIR     := $(BUILD)/nginx-$(NGINX_VERSION)
NGINX_SOURCE  := $(NGINX_DIR)/source
NGINX_OBJS    := $(NGINX_DIR)/objs
NGINX_BIN     := $(NGINX_OBJS)/nginx
NGINX_MODULE  := $(NGINX_DIR)/ngx_http_postback_module.so
NGINX_FLAGS   := --with-compat --with-threads --with-file-aio \
                 --with-http_addition_module --with-http_auth_request_module \
                 --with-http_dav_module --with-http_flv_module \
                 --with-http_gunzip_module --with-http_gzip_static_module \
                 --with-http_mp4_module --with-http_random_index_module \
                 --with-http_realip_module --with-http_secure_link_module \
                 --with-http_slice_module --with-http_ssl_module \
                 --with-http_stub_status_module --with-http_sub_module \
                 --with-http_v2_module --with-http_v3_module

# promtool checks the metrics: taken out of Debian's prometheus package,
# whose installation would also start a Prometheus server
PROMTOOL  := $(BUILD)/tools/usr/bin/promtool

.PHONY: all deps test-deps test unit fuzz-smoke fuzz prove demo test-asan \
        bench deb test-deb build-nginx test-nginx clean

all: $(MODULE)

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "run as root, or install:$$missing" >&2; exit 1; \
	    fi; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD)/nginx/Makefile: config | deps
	mkdir -p $(BUILD)
	cd $(NGX_SRC) && bash -c '. ./conf_flags && ./configure \
	    --with-cc-opt="$(CC_OPT)" --with-ld-opt="$(LD_OPT)" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module="$(CURDIR)" \
	    --builddir="$(BUILD)/nginx"' > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/Makefile $(SOURCES)
	$(MAKE) -s -f $(BUILD)/nginx/Makefile -C $(NGX_SRC) modules
	# a new file, not a rewrite: running nginx processes map the old one
	cp $(BUILD)/nginx/ngx_http_postback_module.so $@.tmp && mv $@.tmp $@

test-deps: $(PROMTOOL)
	$(MAKE) -s deps PACKAGES="$(TEST_PACKAGES)"

$(PROMTOOL): | deps
	mkdir -p $(BUILD)/tools
	cd $(BUILD)/tools && rm -f prometheus_*.deb \
	    && { apt-get download -qq prometheus 2>/dev/null \
	         || { apt-get update -qq && apt-get download -qq prometheus; }; } \
	    && dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb
	touch $@

test: deps $(MODULE) unit fuzz-smoke deb prove

unit: deps
	$(MAKE) -s -C t/unit

fuzz-smoke: deps
	$(MAKE) -s -C fuzz smoke SECONDS=$(FUZZ_SECONDS)

# longer fuzzing: make fuzz FUZZ_SECONDS=600 (each target)
fuzz: deps
	$(MAKE) -s -C fuzz fuzz SECONDS=$(FUZZ_SECONDS)

# test files run three at a time: they mostly wait on nginx, receivers and
# timers (90 s of CPU in 350 s one at a time); PROVE_JOBS=1 for one
PROVE_JOBS ?= 3

# t/16-deb.t installs the package built by `make deb`, when there is one
prove: $(MODULE) test-deps deb
	PB_MODULE=$(MODULE) PB_PROMTOOL=$(PROMTOOL) \
	    PB_DEB="$$(ls $(DEB_DIR)/libnginx-mod-http-postback_*.deb 2>/dev/null)" \
	    prove -j$(PROVE_JOBS) --timer -I t/lib t/

# the t/ suite against the module built with AddressSanitizer, loaded into
# Debian's nginx with the ASan runtime preloaded
test-asan: deps test-deps
	$(MAKE) BUILD=$(ASAN_BUILD) \
	    CC_OPT="$(CC_OPT) -fsanitize=address -fno-omit-frame-pointer" \
	    LD_OPT="$(LD_OPT) -fsanitize=address" $(ASAN_BUILD)/ngx_http_postback_module.so
	printf '#!/bin/sh\nLD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0 exec /usr/sbin/nginx "$$@"\n' \
	    "$$(gcc -print-file-name=libasan.so)" > $(ASAN_BUILD)/nginx.sh
	chmod +x $(ASAN_BUILD)/nginx.sh
	PB_MODULE=$(ASAN_BUILD)/ngx_http_postback_module.so \
	    PB_NGINX=$(ASAN_BUILD)/nginx.sh PB_PROMTOOL=$(PROMTOOL) \
	    prove -j$(PROVE_JOBS) --timer -I t/lib t/

build-nginx: $(NGINX_MODULE)

$(NGINX_SOURCE)/src/core/nginx.h: $(VENDOR)/nginx-$(NGINX_VERSION).tar.gz
	rm -rf $(NGINX_SOURCE) && mkdir -p $(NGINX_SOURCE)
	tar -xzf $< -C $(NGINX_SOURCE) --strip-components=1
	touch $@

$(VENDOR)/nginx-%.tar.gz:
	@echo "no $@: take it from https://nginx.org/download/" >&2; exit 1

# ./configure in nginx.org's tarballs, auto/configure in the repository's
# (as in ../shared/vendor); it adds -Werror, as in the build against
# Debian's nginx
$(NGINX_OBJS)/Makefile: $(NGINX_SOURCE)/src/core/nginx.h config | deps
	cd $(NGINX_SOURCE) \
	&& $$(if [ -f configure ]; then echo ./configure; else echo auto/configure; fi) \
	    --with-cc-opt="$(CC_OPT)" --with-ld-opt="$(LD_OPT)" $(NGINX_FLAGS) \
	    --add-dynamic-module="$(CURDIR)" \
	    --builddir="$(NGINX_OBJS)" > $(NGINX_DIR)/configure.log 2>&1 \
	    || { tail -20 $(NGINX_DIR)/configure.log; exit 1; }

$(NGINX_MODULE): $(NGINX_OBJS)/Makefile $(SOURCES)
	$(MAKE) -s -j$(NGINX_JOBS) -f $(NGINX_OBJS)/Makefile -C $(NGINX_SOURCE) \
	    $(NGINX_TARGETS)
	cp $(NGINX_OBJS)/ngx_http_postback_module.so $@.tmp && mv $@.tmp $@

# t/16-deb.t skips: the package is built for Debian's nginx
test-nginx: $(NGINX_MODULE) test-deps
	PB_NGINX=$(NGINX_BIN) PB_MODULE=$(NGINX_MODULE) PB_PROMTOOL=$(PROMTOOL) \
	    PB_DEB= prove -j$(PROVE_JOBS) --timer -I t/lib t/

# side by side on loopback: plain proxy, mirror, Lua postback, this module;
# ratios of the same run (see bench/ratios.pl and the README)
bench: deps $(MODULE)
	$(MAKE) -s deps PACKAGES="$(BENCH_PACKAGES)"
	MODULE_SO=$(MODULE) bash $(BENCH_PEERS)/run.sh $(BENCH_SECONDS) \
	    $(BENCH_CONNS) | perl bench/ratios.pl
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_CONNS=$(BENCH_CONNS) \
	    perl bench/module.pl $(MODULE)

# the source package (.dsc) and libnginx-mod-http-postback_VERSION_ARCH.deb
# in build/deb, unsigned, from the files git tracks as they are in the
# working tree; VERSION is debian/changelog's, the one place it is written
deb: deps
	$(MAKE) -s deps PACKAGES="$(DEB_PACKAGES)"
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z | xargs -0 cp --parents -t $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc > ../build.log 2>&1 \
	    || { tail -40 ../build.log; exit 1; }
	ls $(DEB_DIR)/*.deb

demo: deps $(MODULE)
	PB_MODULE=$(MODULE) perl -I t/lib demo/demo.pl

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
	-$(MAKE) -s -C t/unit clean
	-$(MAKE) -s -C fuzz clean
