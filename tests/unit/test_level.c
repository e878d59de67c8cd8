/* The level's enum and its string table (common/level.c). */
#include "unit.h"

#include "config.h"
#include "level.h"

static void names_round_trip(void **state)
{
  (void)state;
  for (unsigned i = 0; i < SP_LEVEL_COUNT; i++) {
    enum sp_level l = SP_LEVEL_COUNT;
    const char *n = sp_level_name((enum sp_level)i);
    assert_non_null(n);
    assert_int_equal(sp_level_parse(n, &l), 0);
    assert_int_equal(l, i);
  }
  assert_string_equal(sp_level_name(SP_LEVEL_FULL), "full");
  assert_string_equal(sp_level_name(SP_LEVEL_INC), "inc");
  assert_string_equal(sp_level_name(SP_LEVEL_DIFF), "diff");
}

static void unknown_refused(void **state)
{
  (void)state;
  enum sp_level l = SP_LEVEL_DIFF;
  assert_int_equal(sp_level_parse("auto", &l), -1); /* a request, not a level */
  assert_int_equal(sp_level_parse("Full", &l), -1);
  assert_int_equal(sp_level_parse("", &l), -1);
  assert_int_equal(sp_level_parse(NULL, &l), -1);
  assert_int_equal(l, SP_LEVEL_DIFF); /* untouched */
  assert_null(sp_level_name(SP_LEVEL_COUNT));
}

/* --level and the policy's level: auto or a level, back to the same word. */
static void requests(void **state)
{
  (void)state;
  struct sp_level_req r = { .level = SP_LEVEL_DIFF };
  assert_int_equal(sp_level_req_parse("auto", &r), 0);
  assert_true(r.is_auto);
  assert_string_equal(sp_level_req_name(r), "auto");
  static const char *const words[] = { "full", "inc", "diff" };
  for (unsigned i = 0; i < 3; i++) {
    assert_int_equal(sp_level_req_parse(words[i], &r), 0);
    assert_false(r.is_auto);
    assert_int_equal(r.level, i);
    assert_string_equal(sp_level_req_name(r), words[i]);
  }
  r = (struct sp_level_req){ .level = SP_LEVEL_INC };
  assert_int_equal(sp_level_req_parse("weekly", &r), -1);
  assert_int_equal(sp_level_req_parse("AUTO", &r), -1);
  assert_int_equal(sp_level_req_parse("", &r), -1);
  assert_int_equal(sp_level_req_parse(NULL, &r), -1);
  assert_false(r.is_auto); /* untouched */
  assert_int_equal(r.level, SP_LEVEL_INC);
}

/* The policy's level key admits exactly the requests: auto and each level. */
static void config_choices_match(void **state)
{
  (void)state;
  const char *const *c = sp_config_key_def(SP_KEY_LEVEL)->choices;
  unsigned n = 0;
  struct sp_level_req r;
  for (; c[n]; n++)
    assert_int_equal(sp_level_req_parse(c[n], &r), 0);
  assert_int_equal(n, SP_LEVEL_COUNT + 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(names_round_trip),
    cmocka_unit_test(unknown_refused),
    cmocka_unit_test(requests),
    cmocka_unit_test(config_choices_match),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
