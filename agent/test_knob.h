/* Test-only knobs (documented in stillpoint(1) as such): an environment
 * variable naming milliseconds to sleep at one point of the protocol, so
 * tests can kill the coordinator or overrun a bound at that point. */
#ifndef SP_TEST_KNOB_H
#define SP_TEST_KNOB_H

#include <stdlib.h>
#include <time.h>

static inline void test_knob_sleep(const char *env)
{
  const char *v = getenv(env);
  long ms = v ? strtol(v, NULL, 10) : 0;
  if (ms > 0) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
}

#endif
