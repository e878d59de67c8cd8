#include "progress.h"

#include <inttypes.h>
#include <time.h>

#define MiB (1024.0 * 1024.0)
#define LIVE_REFRESH_S 0.5

double progress_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, FILE *out, const char *prefix,
                   enum sp_progress_mode mode, double interval, bool tty, double now)
{
  if (mode == SP_PROGRESS_AUTO)
    mode = tty ? SP_PROGRESS_LIVE : SP_PROGRESS_LINES;
  *p = (struct progress){
    .out = out,
    .prefix = prefix,
    .live = mode == SP_PROGRESS_LIVE,
    .lines = mode == SP_PROGRESS_LINES,
    .interval = mode == SP_PROGRESS_LIVE ? LIVE_REFRESH_S : interval,
    .t0 = now,
  };
  p->next = now + p->interval;
}

void progress_set_total(struct progress *p, uint64_t total)
{
  p->total = total;
}

void progress_add(struct progress *p, uint64_t bytes)
{
  p->done += bytes;
}

static void eta_format(char *buf, size_t n, double s)
{
  if (s < 0 || s > 359999) {
    snprintf(buf, n, "--:--");
    return;
  }
  unsigned t = (unsigned)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%u:%02u", t / 60, t % 60);
}

int progress_format(char *buf, size_t n, uint64_t done, uint64_t total, double elapsed)
{
  double rate = elapsed > 0 ? (double)done / elapsed : 0;
  unsigned pct = total ? (unsigned)(100.0 * (double)done / (double)total) : 100;
  char eta[32];
  eta_format(eta, sizeof eta, rate > 0 ? (double)(total - (done < total ? done : total)) / rate
                                       : -1);
  return snprintf(buf, n, "%.1f of %.1f MiB (%u%%), %.1f MiB/s, ETA %s", (double)done / MiB,
                  (double)total / MiB, pct, rate / MiB, eta);
}

int progress_format_done(char *buf, size_t n, const char *prefix,
                         const struct sp_copy_stats *st, double seconds)
{
  double rate = seconds > 0 ? (double)st->read / MiB / seconds : 0;
  return snprintf(buf, n,
                  "%s: done: read %" PRIu64 " written %" PRIu64 " zeroed %" PRIu64
                  " bytes in %.2f s (%.1f MiB/s)",
                  prefix, st->read, st->written, st->zeroed, seconds, rate);
}

void progress_tick(struct progress *p, double now)
{
  if ((!p->live && !p->lines) || now < p->next)
    return;
  p->next = now + p->interval;
  char line[160];
  progress_format(line, sizeof line, p->done, p->total, now - p->t0);
  if (p->live) {
    /* \r and erase-to-end: the line is rewritten in place. */
    fprintf(p->out, "\r%s: %s\033[K", p->prefix, line);
    p->on_screen = true;
  } else {
    fprintf(p->out, "%s: %s\n", p->prefix, line);
  }
  fflush(p->out);
}

int progress_timeout_ms(const struct progress *p, double now)
{
  if (!p->live && !p->lines)
    return -1;
  double left = p->next - now;
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

void progress_clear(struct progress *p)
{
  if (p->on_screen) {
    fputs("\r\033[K", p->out);
    fflush(p->out);
    p->on_screen = false;
  }
}
