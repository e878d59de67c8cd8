#include "tpm_probe.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "swtpm_copy.h"

/* TPM2_GetRandom(8): tag NO_SESSIONS, size 12, command code 0x17b. */
static const unsigned char get_random2[] = { 0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8 };
/* TPM_GetRandom(8) of TPM 1.2: tag RQU_COMMAND, size 14, ordinal 0x46. */
static const unsigned char get_random12[] = { 0x00, 0xc1, 0, 0, 0, 14, 0, 0, 0, 0x46,
                                              0, 0, 0, 8 };

static int ask(int fd, const unsigned char *cmd, size_t len, unsigned *rc, struct sp_err *e)
{
  if (write(fd, cmd, len) != (ssize_t)len)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "writing to swtpm");
  unsigned char resp[64];
  size_t got = 0;
  while (got < 10) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 5000) != 1)
      return sp_err_set(e, SP_EXIT_FAILED, "swtpm did not answer");
    ssize_t n = read(fd, resp + got, sizeof resp - got);
    if (n <= 0)
      return sp_err_set(e, SP_EXIT_FAILED, "swtpm closed the connection (it could not load "
                        "the state)");
    got += (size_t)n;
  }
  *rc = (unsigned)resp[6] << 24 | (unsigned)resp[7] << 16 | (unsigned)resp[8] << 8 | resp[9];
  return 0;
}

int tpm_probe(const struct sp_tree *t, const char *version, struct sp_err *e)
{
  struct swtpm_copy s = SWTPM_COPY_INIT;
  bool tpm2 = strcmp(version, "2.0") == 0;
  int rc = -1;
  unsigned code = 0;
  if (swtpm_copy_start(&s, t, version, e) == 0) {
    _cleanup_close_ int fd = swtpm_copy_connect(&s, 5000, e);
    if (fd >= 0 && ask(fd, tpm2 ? get_random2 : get_random12,
                       tpm2 ? sizeof get_random2 : sizeof get_random12, &code, e) == 0) {
      if (code != 0)
        sp_err_set(e, SP_EXIT_FAILED, "swtpm loaded the state but answers with TPM error "
                   "0x%x", code);
      else
        rc = 0;
    }
  }
  swtpm_copy_stop(&s);
  return rc;
}
