/* Where an RBD snapshot is, written as the copier contract and QEMU write
 * it: rbd:POOL[/NAMESPACE]/IMAGE@SNAPSHOT (docs/design.md, "Points in
 * Ceph").  Pure: no cluster needed. */
#ifndef SP_CEPH_RBD_SPEC_H
#define SP_CEPH_RBD_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "xalloc.h"

#define SP_RBD_PREFIX "rbd:"
/* Longer names are refused: far below RADOS's 2048-byte object names,
 * which RBD builds from them, and enough for every name stillpoint makes. */
#define SP_RBD_NAME_MAX 200

struct sp_rbd_spec {
  char *pool, *ns, *image, *snap; /* ns NULL without a namespace, snap NULL without one */
};

/* Whether s names an RBD destination at all (starts with "rbd:"). */
bool sp_rbd_spec_is(const char *s);
/* Parses "rbd:POOL[/NAMESPACE]/IMAGE[@SNAPSHOT]"; each part must be a
 * name (sp_rbd_name_ok).  SP_EXIT_USAGE errors say what is wrong. */
int sp_rbd_spec_parse(const char *s, struct sp_rbd_spec *out, struct sp_err *e);
/* The same form back, snapshot replaced by snap (NULL: none). */
SP_XALLOC char *sp_rbd_spec_format(const struct sp_rbd_spec *s, const char *snap);
/* Whether two specs name the same image (pool, namespace, image). */
bool sp_rbd_spec_same_image(const struct sp_rbd_spec *a, const struct sp_rbd_spec *b);
void sp_rbd_spec_free(struct sp_rbd_spec *s);

/* A name stillpoint accepts for a pool, namespace, image or snapshot:
 * 1 to SP_RBD_NAME_MAX bytes of [A-Za-z0-9._-], not "." or "..", not
 * starting with "-".  Narrower than Ceph allows, on purpose: such a name
 * passes unquoted through QEMU's rbd: file names (':' and '@' are its
 * separators) and a shell, and cannot be read as an option. */
bool sp_rbd_name_ok(const char *name, size_t len);

#endif
