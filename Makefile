# activity_monitor: build with PGXS.
#
#   make            build the extension
#   make install    install it into the server PG_CONFIG points to
#   make test       build, install, start a throwaway cluster, run every suite
#   make bench      capture-cost benchmark (not part of the tests)

EXTENSION   = activity_monitor
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big  = activity_monitor
OBJS        = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA        = $(wildcard sql/$(EXTENSION)--*.sql)
PGFILEDESC  = "activity_monitor - activity capture and alerting"

REGRESS      = $(sort $(notdir $(basename $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=.

# The alert consumer, a libpq client program: built by "make", installed into
# the server's bindir by "make install", removed by "make clean".
SCRIPTS_built = activity_monitor_consume

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# "make test" must work on a machine without the server headers yet: it
# installs them itself.
ifneq ($(wildcard $(PGXS)),)
override with_llvm = no
include $(PGXS)
else
all install:
	@echo "PGXS not found: install postgresql-server-dev-15 (make test does)" >&2; exit 1
endif

activity_monitor_consume: src/consumer/activity_monitor_consume.c
	$(CC) -Wall -Wextra -O2 -I$(shell $(PG_CONFIG) --includedir) -o $@ $< -L$(shell $(PG_CONFIG) --libdir) -lpq

.PHONY: test bench demo print-regress
test:
	test/run.sh

bench:
	test/bench/run.sh

demo:
	test/demo/run.sh

print-regress:
	@echo $(REGRESS)
