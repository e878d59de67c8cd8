#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup.h"

static void to_hex(const unsigned char *md, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
}

int sp_sha256_hex(const void *data, size_t len, char hex[SP_SHA256_HEX_LEN + 1])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
    return -1;
  to_hex(md, hex);
  return 0;
}

static void ctx_freep(EVP_MD_CTX **c) { EVP_MD_CTX_free(*c); }

/* A whole file is hashed with O_DIRECT where the file system allows it:
 * the images a copier wrote with O_DIRECT are not in the page cache, and
 * reading 1 GiB of one through it cost 1.57 s of system time and 12.8 s
 * here against 0.18 s and 6.3 s direct (notes of issue 20).  Larger reads
 * make up for the readahead O_DIRECT goes without. */
enum { BUF = 1 << 20, DIRECT_BUF = 4 << 20, DIRECT_ALIGN = 4096 };

struct saved_flags {
  int fd, flags; /* flags < 0: nothing to put back */
};

static void restore_flags(struct saved_flags *s)
{
  if (s->flags >= 0)
    fcntl(s->fd, F_SETFL, s->flags);
}

/* Reads in to its end, hashing; every block also written to out when
 * out >= 0 (hashing while copying costs no second read). */
static int hash_stream(int in, int out, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  __attribute__((cleanup(ctx_freep))) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 is not available from OpenSSL");
  const int fl = out < 0 ? fcntl(in, F_GETFL) : -1;
  const off_t pos = fl >= 0 ? lseek(in, 0, SEEK_CUR) : -1;
  bool direct = fl >= 0 && pos >= 0 && pos % DIRECT_ALIGN == 0 && !(fl & O_DIRECT) &&
                fcntl(in, F_SETFL, fl | O_DIRECT) == 0;
  /* The caller's descriptor gets its flags back, whatever happens. */
  __attribute__((cleanup(restore_flags))) struct saved_flags saved = { in, direct ? fl : -1 };
  const size_t len = direct ? DIRECT_BUF : BUF;
  _cleanup_free_ unsigned char *buf = direct ? aligned_alloc(DIRECT_ALIGN, len) : malloc(len);
  if (!buf)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "SHA-256");
  for (;;) {
    ssize_t r = read(in, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EINVAL && direct) {
      /* Refused after all (or an unaligned offset after a short read):
       * the rest goes through the page cache. */
      direct = false;
      if (fcntl(in, F_SETFL, fl) < 0)
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "fcntl");
      continue;
    }
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "read");
    if (r == 0)
      break;
    EVP_DigestUpdate(ctx, buf, (size_t)r);
    for (ssize_t off = 0; out >= 0 && off < r;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "write");
      off += w;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 failed");
  to_hex(md, hex);
  return 0;
}

int sp_sha256_fd(int fd, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  return hash_stream(fd, -1, hex, e);
}

int sp_sha256_copy(int in, int out, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  return hash_stream(in, out, hex, e);
}

int sp_sha256_file(const char *path, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", path);
  if (sp_sha256_fd(fd, hex, e) < 0)
    return sp_err_prefix(e, "%s", path);
  return 0;
}
