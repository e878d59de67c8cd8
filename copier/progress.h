/* What the person (or the coordinator's log) sees while a disk is copied:
 * on a terminal one live line with done/total, rate and ETA; otherwise a
 * line every interval (10 s by default) so a log shows the copy is alive
 * without flooding; at the end one summary line whose form is part of
 * the interface (the coordinator parses it). */
#ifndef SP_COPY_PROGRESS_H
#define SP_COPY_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"

struct sp_copy_stats {
  uint64_t read;    /* bytes read from the export */
  uint64_t written; /* data bytes written to the image */
  uint64_t zeroed;  /* bytes written as zeroes (write-zeroes requests) */
};

struct progress {
  FILE *out;
  const char *prefix; /* "stillpoint-copy: vda" */
  bool live, lines;
  double interval;    /* seconds between updates */
  uint64_t total, done;
  double t0, next;
  bool on_screen;     /* a live line is shown and has no newline yet */
};

/* Seconds on the monotonic clock. */
double progress_now(void);

/* tty: whether out is a terminal (auto picks live there, lines elsewhere). */
void progress_init(struct progress *p, FILE *out, const char *prefix,
                   enum sp_progress_mode mode, double interval, bool tty, double now);
void progress_set_total(struct progress *p, uint64_t total);
void progress_add(struct progress *p, uint64_t bytes);
/* Prints an update when one is due. */
void progress_tick(struct progress *p, double now);
/* Milliseconds until the next update is due (for poll), -1 for none. */
int progress_timeout_ms(const struct progress *p, double now);
/* Ends a live line so the next message starts on a clean line. */
void progress_clear(struct progress *p);

/* "512.0 of 2048.0 MiB (25%), 210.3 MiB/s, ETA 0:07" */
int progress_format(char *buf, size_t n, uint64_t done, uint64_t total, double elapsed);
/* The success line, without newline:
 * "<prefix>: done: read R written W zeroed Z bytes in S.SS s (M.M MiB/s)",
 * M being bytes read per second. */
int progress_format_done(char *buf, size_t n, const char *prefix,
                         const struct sp_copy_stats *st, double seconds);

#endif
