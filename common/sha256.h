/* SHA-256 through OpenSSL's EVP interface, as lowercase hex: the form
 * sha256sum(1) prints, so SHA256SUMS files verify with `sha256sum -c`. */
#ifndef SP_SHA256_H
#define SP_SHA256_H

#include <stddef.h>

#include "err.h"

#define SP_SHA256_HEX_LEN 64

/* hex must hold SP_SHA256_HEX_LEN + 1 bytes. */
int sp_sha256_hex(const void *data, size_t len, char hex[SP_SHA256_HEX_LEN + 1]);
int sp_sha256_file(const char *path, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e);
/* From fd's current offset to its end. */
int sp_sha256_fd(int fd, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e);
/* Copies in to out (both at their offsets) and hashes what passed. */
int sp_sha256_copy(int in, int out, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e);


/* A hash fed piece by piece, for data hashed as it passes (the copier's
 * image, written front to back). */
struct sp_sha256;
struct sp_sha256 *sp_sha256_new(struct sp_err *e);
void sp_sha256_update(struct sp_sha256 *s, const void *data, size_t len);
/* The hex digest; fails if an update failed. */
int sp_sha256_end(struct sp_sha256 *s, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e);
void sp_sha256_free(struct sp_sha256 *s);

#endif
