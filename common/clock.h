/* The two clocks stillpoint reads: a monotonic one for budgets and windows,
 * and UTC wall time for what a point or a lock records.  A module of its
 * own so that the hook, the guardian and the copier's helpers can time
 * things without depending on state capture. */
#ifndef SP_CLOCK_H
#define SP_CLOCK_H

/* A monotonic clock in milliseconds, for budgets and windows. */
long long sp_now_ms(void);

/* UTC now as 2026-11-26T06:30:00.123Z (24 characters and a NUL). */
void sp_utc_now(char buf[32]);

#endif
