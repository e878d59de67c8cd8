#include "sha256.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "cleanup.h"
#include "xalloc.h"

/* OpenSSL is loaded at the first hash, not when a program starts: its
 * 21,000 relocations were the largest part of the libvirt hook's start
 * (2 of its 4 ms of CPU for loading libraries, `perf stat`), and the hook's
 * common path hashes nothing (tests/bench/hook).  dlopen of a library
 * already loaded (the agent links OpenSSL for X.509) only counts a
 * reference.  The types come from OpenSSL's own prototypes. */
struct evp {
  void *lib;
  __typeof__(&EVP_sha256) sha256;
  __typeof__(&EVP_MD_CTX_new) ctx_new;
  __typeof__(&EVP_MD_CTX_free) ctx_free;
  __typeof__(&EVP_DigestInit_ex) init;
  __typeof__(&EVP_DigestUpdate) update;
  __typeof__(&EVP_DigestFinal_ex) final;
};

static void evp_close(struct evp *v)
{
  if (v->lib)
    dlclose(v->lib);
}

static int evp_open(struct evp *v, struct sp_err *e)
{
  /* NODELETE: the next hash of this process finds it loaded. */
  v->lib = dlopen(SP_LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!v->lib)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256: cannot load OpenSSL (%s): %s; install "
                      "Debian's libssl3", SP_LIBCRYPTO_SONAME, dlerror());
  *(void **)&v->sha256 = dlsym(v->lib, "EVP_sha256");
  *(void **)&v->ctx_new = dlsym(v->lib, "EVP_MD_CTX_new");
  *(void **)&v->ctx_free = dlsym(v->lib, "EVP_MD_CTX_free");
  *(void **)&v->init = dlsym(v->lib, "EVP_DigestInit_ex");
  *(void **)&v->update = dlsym(v->lib, "EVP_DigestUpdate");
  *(void **)&v->final = dlsym(v->lib, "EVP_DigestFinal_ex");
  if (!v->sha256 || !v->ctx_new || !v->ctx_free || !v->init || !v->update || !v->final)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256: %s lacks the EVP digest functions: "
                      "install Debian's libssl3", SP_LIBCRYPTO_SONAME);
  return 0;
}

/* A SHA-256 context with the library it came from; freed in that order. */
struct digest {
  struct evp evp;
  EVP_MD_CTX *ctx;
};

static void digest_free(struct digest *d)
{
  if (d->ctx)
    d->evp.ctx_free(d->ctx);
  evp_close(&d->evp);
}

static int digest_init(struct digest *d, struct sp_err *e)
{
  if (evp_open(&d->evp, e) < 0)
    return -1;
  d->ctx = d->evp.ctx_new();
  if (!d->ctx || !d->evp.init(d->ctx, d->evp.sha256(), NULL))
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 is not available from OpenSSL");
  return 0;
}

static void to_hex(const unsigned char *md, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
}

static int digest_final(struct digest *d, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!d->evp.final(d->ctx, md, &mdlen) || mdlen != 32)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 failed");
  to_hex(md, hex);
  return 0;
}

int sp_sha256_hex(const void *data, size_t len, char hex[SP_SHA256_HEX_LEN + 1])
{
  _cleanup_(digest_free) struct digest d = { 0 };
  struct sp_err e = { 0 };
  if (digest_init(&d, &e) < 0 || !d.evp.update(d.ctx, data, len))
    return -1;
  return digest_final(&d, hex, &e);
}

struct sp_sha256 {
  struct digest d;
  bool failed;
};

struct sp_sha256 *sp_sha256_new(struct sp_err *e)
{
  struct sp_sha256 *s = sp_xcalloc(1, sizeof *s);
  if (digest_init(&s->d, e) < 0) {
    sp_sha256_free(s);
    return NULL;
  }
  return s;
}

void sp_sha256_update(struct sp_sha256 *s, const void *data, size_t len)
{
  if (!s->failed && !s->d.evp.update(s->d.ctx, data, len))
    s->failed = true;
}

int sp_sha256_end(struct sp_sha256 *s, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  if (s->failed)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 failed");
  return digest_final(&s->d, hex, e);
}

void sp_sha256_free(struct sp_sha256 *s)
{
  if (!s)
    return;
  digest_free(&s->d);
  free(s);
}

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

/* One read of the next block: EINTR retried, and O_DIRECT dropped for
 * the rest of the file when it is refused after all (or when a short read
 * left the offset unaligned): those blocks go through the page cache. */
static ssize_t read_block(int in, unsigned char *buf, size_t len, bool *direct, int fl)
{
  for (;;) {
    ssize_t r = read(in, buf, len);
    if (r >= 0 || errno != EINTR) {
      if (!(r < 0 && errno == EINVAL && *direct))
        return r;
      *direct = false;
      if (fcntl(in, F_SETFL, fl) < 0)
        return -1;
    }
  }
}

/* Writes all of buf; O_DIRECT dropped for the rest of the file when a
 * block is refused (an unaligned tail): that goes through the page cache. */
static int write_all(int out, const unsigned char *buf, size_t len, bool *direct, int fl)
{
  for (size_t off = 0; off < len;) {
    ssize_t w = write(out, buf + off, len - off);
    if (w < 0 && errno == EINVAL && *direct) {
      *direct = false;
      if (fcntl(out, F_SETFL, fl) < 0)
        return -1;
      continue;
    }
    if (w < 0 && errno != EINTR)
      return -1;
    off += w > 0 ? (size_t)w : 0;
  }
  return 0;
}

/* A ring of buffers: a reader thread fills them in order, the caller
 * hashes each and, for a copy, a writer thread writes each; a buffer is
 * filled again once every consumer is done with it.  A file so takes
 * about max(read, SHA, write) and not their sum: with O_DIRECT nothing
 * reads ahead, SHA-256 of a cold image costs about as much as reading it,
 * and a restore's copy of a 2 GiB image took 6.3 s hashing and writing in
 * turn against 4.7 s for `dd` to write it (docs/facts.md, "Timings"). */
enum { RING_MAX = 4 };

struct feed {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int in, fl;
  bool direct;
  int out, ofl;
  bool odirect;
  size_t cap;
  unsigned nbuf;
  unsigned char *buf[RING_MAX];
  ssize_t len[RING_MAX];     /* bytes in buf[i]; 0: the end of the file */
  uint64_t seq[RING_MAX];    /* the block buf[i] holds, while users[i] > 0 */
  unsigned users[RING_MAX];  /* consumers not done with buf[i]; 0: free */
  unsigned consumers;        /* 1: hashing; 2: hashing and writing */
  int read_err, write_err;   /* errno of the read or write that failed */
  bool stop;                 /* the writer failed: everyone stops */
};

static void feed_stop(struct feed *f, int write_err)
{
  pthread_mutex_lock(&f->mu);
  f->write_err = write_err;
  f->stop = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void *feed_reader(void *arg)
{
  struct feed *f = arg;
  for (uint64_t b = 0;; b++) {
    unsigned i = (unsigned)(b % f->nbuf);
    pthread_mutex_lock(&f->mu);
    while (f->users[i] > 0 && !f->stop)
      pthread_cond_wait(&f->cv, &f->mu);
    bool stop = f->stop;
    pthread_mutex_unlock(&f->mu);
    if (stop)
      return NULL;
    ssize_t r = read_block(f->in, f->buf[i], f->cap, &f->direct, f->fl);
    int err = r < 0 ? errno : 0;
    pthread_mutex_lock(&f->mu);
    f->len[i] = r < 0 ? 0 : r;
    f->read_err = err;
    f->seq[i] = b;
    f->users[i] = f->consumers;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (r <= 0)
      return NULL;
  }
}

/* Block b once it is read: its length (0 at the end), or -1 when the
 * writer failed. */
static ssize_t feed_take(struct feed *f, uint64_t b)
{
  unsigned i = (unsigned)(b % f->nbuf);
  pthread_mutex_lock(&f->mu);
  while (!(f->users[i] > 0 && f->seq[i] == b) && !f->stop)
    pthread_cond_wait(&f->cv, &f->mu);
  ssize_t n = f->stop ? -1 : f->len[i];
  pthread_mutex_unlock(&f->mu);
  return n;
}

static void feed_release(struct feed *f, uint64_t b)
{
  pthread_mutex_lock(&f->mu);
  f->users[b % f->nbuf]--;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void *feed_writer(void *arg)
{
  struct feed *f = arg;
  for (uint64_t b = 0;; b++) {
    ssize_t n = feed_take(f, b);
    if (n <= 0)
      return NULL;
    if (write_all(f->out, f->buf[b % f->nbuf], (size_t)n, &f->odirect, f->ofl) < 0) {
      feed_stop(f, errno);
      return NULL;
    }
    feed_release(f, b);
  }
}

/* Hashes what the reader delivers until its end or the writer's failure.
 * It returns once every block has been hashed; the caller joins. */
static void feed_hash(struct feed *f, struct digest *d)
{
  for (uint64_t b = 0;; b++) {
    ssize_t n = feed_take(f, b);
    if (n <= 0)
      return;
    d->evp.update(d->ctx, f->buf[b % f->nbuf], (size_t)n);
    feed_release(f, b);
  }
}

/* The threads of a feed: reader, and writer for a copy.  false when one
 * cannot start (none is left running), and the caller copies alone. */
static bool feed_run(struct feed *f, struct digest *d)
{
  const bool writing = f->consumers == 2;
  pthread_t reader, writer = 0;
  if (writing && pthread_create(&writer, NULL, feed_writer, f) != 0)
    return false;
  if (pthread_create(&reader, NULL, feed_reader, f) != 0) {
    if (writing) {
      feed_stop(f, 0);
      pthread_join(writer, NULL);
    }
    return false;
  }
  feed_hash(f, d);
  pthread_join(reader, NULL);
  if (writing)
    pthread_join(writer, NULL);
  return true;
}

/* O_DIRECT on fd when its offset is aligned and its file system takes
 * it; fl is its flags before. */
static bool direct_on(int fd, int fl)
{
  const off_t pos = fl >= 0 ? lseek(fd, 0, SEEK_CUR) : -1;
  return fl >= 0 && pos >= 0 && pos % DIRECT_ALIGN == 0 && !(fl & O_DIRECT) &&
         fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
}

static void free_ring(unsigned char *(*buf)[RING_MAX])
{
  for (unsigned i = 0; i < RING_MAX; i++)
    free((*buf)[i]);
}

/* Reads in to its end, hashing; every block also written to out when
 * out >= 0 (hashing while copying costs no second read).  A copy is
 * O_DIRECT on both sides where it can be: through the page cache, the
 * first touch of each fresh page cost about 2 s of system time per GiB
 * written here (restore --keep-chain of a 2.3 GiB chain: 4.0-5.3 s of
 * system time, 0.2-0.3 s direct; docs/facts.md). */
static int hash_stream(int in, int out, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  _cleanup_(digest_free) struct digest d = { 0 };
  if (digest_init(&d, e) < 0)
    return -1;
  const int fl = fcntl(in, F_GETFL);
  bool direct = direct_on(in, fl);
  /* The caller's descriptors get their flags back, whatever happens. */
  _cleanup_(restore_flags) struct saved_flags saved = { in, direct ? fl : -1 };
  const int ofl = out >= 0 && direct ? fcntl(out, F_GETFL) : -1;
  bool odirect = direct_on(out, ofl);
  _cleanup_(restore_flags) struct saved_flags osaved = { out, odirect ? ofl : -1 };
  const size_t len = direct ? DIRECT_BUF : BUF;
  /* Two buffers keep a reader ahead of the hash; a copy takes four, so
   * that neither the hash nor the writes wait for the other. */
  const unsigned nbuf = out >= 0 ? 4 : 2;
  _cleanup_(free_ring) unsigned char *ring[RING_MAX] = { NULL };
  for (unsigned i = 0; i < nbuf; i++)
    ring[i] = sp_xaligned_alloc(DIRECT_ALIGN, len);
  struct feed f = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .in = in,
                    .fl = fl, .direct = direct, .out = out, .ofl = ofl, .odirect = odirect,
                    .cap = len, .nbuf = nbuf, .consumers = out >= 0 ? 2 : 1 };
  memcpy(f.buf, ring, sizeof ring);
  if (feed_run(&f, &d)) {
    if (f.read_err)
      return sp_err_sys(e, SP_EXIT_FAILED, f.read_err, "read");
    if (f.stop)
      return sp_err_sys(e, SP_EXIT_FAILED, f.write_err, "write");
    return digest_final(&d, hex, e);
  }
  /* No thread could start: one block at a time. */
  for (;;) {
    ssize_t r = read_block(in, ring[0], len, &f.direct, fl);
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "read");
    if (r == 0)
      break;
    d.evp.update(d.ctx, ring[0], (size_t)r);
    if (out >= 0 && write_all(out, ring[0], (size_t)r, &f.odirect, ofl) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "write");
  }
  return digest_final(&d, hex, e);
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
