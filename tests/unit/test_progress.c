/* Progress lines and the success line the coordinator parses
 * (copier/progress.c). */
#include "unit.h"

#include <regex.h>

#include "progress.h"

static void done_line_is_the_interface(void **state)
{
  char buf[256];
  struct sp_copy_stats st = { .read = 2147483648ull, .written = 2013265920, .zeroed = 65536 };
  progress_format_done(buf, sizeof buf, "stillpoint-copy: vda", &st, 3.456);
  assert_string_equal(buf, "stillpoint-copy: vda: done: read 2147483648 written 2013265920 "
                           "zeroed 65536 bytes in 3.46 s (592.6 MiB/s)");
  /* The pattern the coordinator uses, on an empty incremental too. */
  regex_t re;
  assert_int_equal(regcomp(&re,
                           "^stillpoint-copy: ([^:]+): done: read ([0-9]+) written ([0-9]+) "
                           "zeroed ([0-9]+) bytes in ([0-9]+\\.[0-9]{2}) s "
                           "\\(([0-9]+\\.[0-9]) MiB/s\\)$",
                           REG_EXTENDED),
                   0);
  assert_int_equal(regexec(&re, buf, 0, NULL, 0), 0);
  st = (struct sp_copy_stats){ 0 };
  progress_format_done(buf, sizeof buf, "stillpoint-copy: sda", &st, 0);
  assert_string_equal(buf, "stillpoint-copy: sda: done: read 0 written 0 zeroed 0 bytes in "
                           "0.00 s (0.0 MiB/s)");
  assert_int_equal(regexec(&re, buf, 0, NULL, 0), 0);
  regfree(&re);
}

static void progress_text(void **state)
{
  char buf[160];
  progress_format(buf, sizeof buf, 512ull << 20, 2048ull << 20, 2.0);
  assert_string_equal(buf, "512.0 of 2048.0 MiB (25%), 256.0 MiB/s, ETA 0:06");
  progress_format(buf, sizeof buf, 0, 1 << 20, 0);
  assert_string_equal(buf, "0.0 of 1.0 MiB (0%), 0.0 MiB/s, ETA --:--");
  progress_format(buf, sizeof buf, 1 << 20, 3601ull << 20, 1.0);
  assert_non_null(strstr(buf, "ETA 1:00:00"));
  /* Beyond 100 hours an ETA says nothing useful. */
  progress_format(buf, sizeof buf, 1 << 20, 4000ull << 30, 1.0);
  assert_non_null(strstr(buf, "ETA --:--"));
  progress_format(buf, sizeof buf, 0, 0, 1.0);
  assert_non_null(strstr(buf, "(100%)"));
}

static void lines_every_interval(void **state)
{
  char *mem = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&mem, &len);
  struct progress p;
  progress_init(&p, f, "stillpoint-copy: vda", SP_PROGRESS_AUTO, 10, false, 100.0);
  progress_set_total(&p, 100 << 20);
  progress_tick(&p, 105.0); /* not due yet */
  assert_int_equal(progress_timeout_ms(&p, 105.0), 5001);
  progress_add(&p, 50 << 20);
  progress_tick(&p, 110.0);
  progress_tick(&p, 115.0);
  progress_add(&p, 50 << 20);
  progress_tick(&p, 120.5);
  fflush(f);
  assert_string_equal(mem, "stillpoint-copy: vda: 50.0 of 100.0 MiB (50%), 5.0 MiB/s, ETA 0:10\n"
                           "stillpoint-copy: vda: 100.0 of 100.0 MiB (100%), 4.9 MiB/s, ETA 0:00\n");
  fclose(f);
  free(mem);
}

static void live_line_on_a_terminal(void **state)
{
  char *mem = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&mem, &len);
  struct progress p;
  progress_init(&p, f, "x", SP_PROGRESS_AUTO, 10, true, 0);
  progress_tick(&p, 0.6);
  progress_tick(&p, 1.2);
  progress_clear(&p);
  fflush(f);
  /* Rewritten in place (\r, erase to end of line), never a newline, and
   * erased at the end so the summary starts on a clean line. */
  assert_null(strchr(mem, '\n'));
  assert_int_equal(mem[0], '\r');
  assert_non_null(strstr(mem + 1, "\rx: "));
  assert_string_equal(mem + len - 4, "\r\033[K");
  fclose(f);
  free(mem);

  mem = NULL;
  f = open_memstream(&mem, &len);
  progress_init(&p, f, "x", SP_PROGRESS_OFF, 10, true, 0);
  progress_tick(&p, 100);
  assert_int_equal(progress_timeout_ms(&p, 0), -1);
  fflush(f);
  assert_int_equal(len, 0);
  fclose(f);
  free(mem);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(done_line_is_the_interface),
    cmocka_unit_test(progress_text),
    cmocka_unit_test(lines_every_interval),
    cmocka_unit_test(live_line_on_a_terminal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
