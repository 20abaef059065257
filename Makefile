# pipepool: see README.md.  Long recipes live in tests/*.sh.
CC	?= cc
CFLAGS	?= -O2 -g
WARN	 = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith
CPPFLAGS += -D_GNU_SOURCE -Iworker -Ifcgi
LDLIBS	 = -lfcgi -linih -lsqlite3 -lpthread
ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
B	 = build/san
else
B	 = build/rel
endif
PREFIX	?= /usr/local

SRCS	= $(wildcard worker/*.c fcgi/*.c)
OBJS	= $(SRCS:%.c=$(B)/%.o)
LIBOBJS	= $(filter-out $(B)/worker/main.o,$(OBJS))
UNITS	= $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/*.c))

all: build/pipepool

build/pipepool: $(B)/pipepool
	ln -sf $(notdir $(B))/pipepool $@

$(B)/pipepool: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c $(wildcard worker/*.h fcgi/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

units: $(UNITS)

deps:
	sh tests/deps.sh

run: deps all
	sh conf/run.sh

test: deps all units
	bash tests/run.sh $(B)

bench: deps all
	bash tests/bench/run.sh

clean:
	rm -rf build

.PHONY: all units deps run test bench clean
