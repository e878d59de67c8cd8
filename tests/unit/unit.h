/* What the cmocka tests share: a scratch directory and file writer. */
#ifndef SP_TEST_UNIT_H
#define SP_TEST_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mkdtemp under $TMPDIR; the caller removes it with sp_rm_rf. */
static inline char *unit_tmpdir(void)
{
  const char *base = getenv("TMPDIR");
  char *t = NULL;
  assert_true(asprintf(&t, "%s/sp-unit-XXXXXX", base ? base : "/tmp") > 0);
  assert_non_null(mkdtemp(t));
  return t;
}

static inline char *unit_write(const char *dir, const char *name, const void *data, size_t len)
{
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  return p;
}

#endif
