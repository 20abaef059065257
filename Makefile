# pipepool: see README.md.  Long recipes live in tests/*.sh.
CC	?= cc
CFLAGS	?= -O2 -g
WARN	 = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith
CPPFLAGS += -D_GNU_SOURCE -Iworker -Iworker/ipc -Iworker/app -Ifcgi \
	    $(shell pkg-config --cflags libpq)
# libpq is not linked: the store that needs it loads it (worker/pq.c).
LDLIBS	 = -lfcgi -linih -lsqlite3 -lpthread -ldl
ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
B	 = build/san
else
B	 = build/rel
endif
PREFIX	?= /usr/local

SRCS	= $(wildcard worker/*.c worker/ipc/*.c worker/app/*.c fcgi/*.c)
HDRS	= $(wildcard worker/*.h worker/ipc/*.h worker/app/*.h fcgi/*.h)
OBJS	= $(SRCS:%.c=$(B)/%.o)
LIBOBJS	= $(filter-out $(B)/worker/main.o,$(OBJS))
UNITS	= $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/*.c))
# libFuzzer targets for the parsers pipepool owns (clang only).
FUZZ	= $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/*.c))
FUZZSRC	= worker/ipc/msg.c worker/query.c fcgi/request.c worker/ipc/dispatch.c \
	  worker/ipc/futex.c worker/log.c worker/proc.c

# build/pipepool is always the plain build; SAN=1 builds build/san/pipepool.
ifeq ($(SAN),1)
all: $(B)/pipepool build/hello.so
else
all: build/pipepool build/hello.so

build/pipepool: $(B)/pipepool
	ln -sf $(notdir $(B))/pipepool $@
endif

# An --app shared object sees pipepool's pp_* functions, and only them.
$(B)/pipepool: $(OBJS) worker/app/pipepool.sym | build/libfcgi-ok
	$(CC) $(LDFLAGS) -Wl,--dynamic-list=worker/app/pipepool.sym -o $@ \
	    $(OBJS) $(LDLIBS)

# The built-in application is hello.c; build/hello.so is the same file as
# an --app module (plain flags: it is loaded by either build).
$(B)/worker/app/hello.o: CPPFLAGS += -DPIPEPOOL_BUILTIN
build/hello.so: worker/app/hello.c worker/app/pipepool.h
	@mkdir -p build
	$(CC) $(WARN) -O2 -g -shared -fPIC -Iworker/app -o $@ $<

# Refuse a libfcgi without the CVE-2025-23016 fix.
build/libfcgi-ok:
	@mkdir -p build
	sh tests/deps.sh --check-libfcgi && touch $@

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

# The units' modules; optional, so that a build context without tests/
# (conf/Dockerfile's) still builds the server.
-include tests/unit/units.mk
.SECONDEXPANSION:
$(B)/tests/%: tests/unit/%.c $$(addprefix $(B)/,$$(addsuffix .o,$$($$*_MODS)))
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

units: $(UNITS)

build/fuzz/%: tests/fuzz/%.c $(FUZZSRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
	    -o $@ $< $(FUZZSRC)

fuzz: $(FUZZ)

deps:
	sh tests/deps.sh

run: deps all
	sh conf/run.sh

test: deps all units fuzz
	bash tests/run.sh $(B)

bench: deps all build/hop
	sh tests/bench/peers.sh
	bash tests/bench/run.sh

# The worker hop alone, without nginx (tests/bench/hop.c).
build/hop: tests/bench/hop.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

hop: build/hop
	bash tests/bench/hop.sh

install: all
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" sh conf/install.sh install

uninstall:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" sh conf/install.sh uninstall

demo: deps all
	sh conf/demo.sh

clean:
	rm -rf build

.PHONY: all units fuzz deps run test bench hop install uninstall demo clean
