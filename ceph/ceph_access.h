/* What QEMU needs to reach a Ceph cluster when libvirt, not stillpoint,
 * opens the image (restore --instant of a Ceph point, docs/design.md
 * "Points in Ceph"): the monitors' addresses, from the configuration's
 * mon_host, for <host name= port=> elements (QEMU cannot read a root-only
 * ceph.conf, docs/facts.md), and the cephx key of a client, from its
 * keyring, for a libvirt secret.  Pure and strict: both texts are the
 * site's files, but what is taken from them ends up in a domain XML and
 * in a secret, so anything unusual is refused rather than guessed. */
#ifndef SP_CEPH_ACCESS_H
#define SP_CEPH_ACCESS_H

#include <stddef.h>

#include "err.h"

#define SP_CEPH_MONS_MAX 16
#define SP_CEPH_HOST_MAX 253
#define SP_CEPH_KEY_MAX 64          /* decoded bytes; a cephx key is 28 */
#define SP_CEPH_KEYRING_MAX (64u << 10)

struct sp_ceph_mon {
  char host[SP_CEPH_HOST_MAX + 1]; /* an IPv4 address or a DNS name */
  unsigned port;                   /* 0: none given (the client's default) */
};

/* mon_host ("[v2:IP:PORT,v1:IP:PORT] ...", "v1:IP:PORT", "IP:PORT",
 * "HOST", separated by ',', ';' or blanks) into at most max monitors; of
 * an address vector, its v2 address (else its v1).  IPv6 addresses are
 * refused (not needed yet, and their brackets would be ambiguous here).
 * Exit 2 (usage: the site's configuration) for anything else. */
int sp_ceph_mon_host_parse(const char *value, struct sp_ceph_mon *out, size_t max, size_t *n,
                           struct sp_err *e);

/* The key of entity ("client.USER") in a keyring's text: the section
 * [ENTITY] must be there once, with one "key = BASE64" line; the key is
 * decoded into key (at most SP_CEPH_KEY_MAX bytes), its length in *klen.
 * Exit 2 otherwise, saying what is wrong. */
int sp_ceph_keyring_key(const char *text, size_t len, const char *entity, unsigned char *key,
                        size_t *klen, struct sp_err *e);

#endif
