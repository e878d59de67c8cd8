#include "state_capture.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "clock.h"

int sp_host_tree_capture(struct sp_host *h, const char *dir, int max_reads, long budget_ms,
                         struct sp_tree *t, struct sp_capture_stats *st, struct sp_err *e)
{
  long long start = sp_now_ms();
  struct sp_tree prev = { 0 };
  bool have_prev = false;
  memset(st, 0, sizeof *st);
  memset(t, 0, sizeof *t);
  for (;;) {
    struct sp_tree cur;
    bool temp;
    if (h->ops->read_tree(h, dir, &cur, &temp, e) < 0) {
      sp_tree_free(&prev);
      return -1;
    }
    st->reads++;
    st->temp_seen += temp;
    if (!temp && have_prev && strcmp(prev.digest, cur.digest) == 0) {
      sp_tree_free(&prev);
      *t = cur;
      st->ms = (long)(sp_now_ms() - start);
      return 0;
    }
    sp_tree_free(&prev);
    prev = cur;
    have_prev = !temp;
    if (st->reads >= max_reads || sp_now_ms() - start > budget_ms) {
      sp_tree_free(&prev);
      return sp_err_set(e, SP_EXIT_FAILED,
                        "TPM state in %s did not settle: %d reads in %lld ms, %d with a swtpm "
                        "temp file", dir, st->reads, sp_now_ms() - start, st->temp_seen);
    }
    if (temp) {
      /* swtpm is between write and rename: give it a moment. */
      struct timespec pause = { 0, 2 * 1000 * 1000 };
      nanosleep(&pause, NULL);
    }
  }
}

int sp_host_blob_capture(struct sp_host *h, const char *path, int max_reads, long budget_ms,
                         struct sp_blob *b, struct sp_capture_stats *st, struct sp_err *e)
{
  long long start = sp_now_ms();
  struct sp_blob prev = { 0 };
  memset(st, 0, sizeof *st);
  for (;;) {
    struct sp_blob cur;
    if (h->ops->read_blob(h, path, &cur, e) < 0) {
      sp_blob_free(&prev);
      return -1;
    }
    st->reads++;
    if (prev.name && strcmp(prev.sha256, cur.sha256) == 0) {
      sp_blob_free(&prev);
      *b = cur;
      st->ms = (long)(sp_now_ms() - start);
      return 0;
    }
    sp_blob_free(&prev);
    prev = cur;
    if (st->reads >= max_reads || sp_now_ms() - start > budget_ms) {
      sp_blob_free(&prev);
      return sp_err_set(e, SP_EXIT_FAILED, "%s kept changing: %d reads in %lld ms", path,
                        st->reads, sp_now_ms() - start);
    }
  }
}

int sp_tree_capture(const char *dir, int max_reads, long budget_ms, struct sp_tree *t,
                    struct sp_capture_stats *st, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_tree_capture(&local, dir, max_reads, budget_ms, t, st, e);
}

int sp_blob_capture(const char *path, int max_reads, long budget_ms, struct sp_blob *b,
                    struct sp_capture_stats *st, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_blob_capture(&local, path, max_reads, budget_ms, b, st, e);
}
