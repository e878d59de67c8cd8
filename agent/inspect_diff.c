#include "inspect_diff.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_tpm2_types.h>

#include "cleanup.h"
#include "xalloc.h"

static int add(struct inspect_diff *d, const char *area, const char *item, const char *change,
               struct sp_err *e, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int add(struct inspect_diff *d, const char *area, const char *item, const char *change,
               struct sp_err *e, const char *fmt, ...)
{
  d->v = sp_xreallocarray(d->v, d->n + 1, sizeof *d->v);
  struct inspect_change *c = &d->v[d->n++];
  c->area = area;
  c->change = change;
  c->item = sp_xstrdup(item);
  va_list ap;
  va_start(ap, fmt);
  c->text = sp_xvasprintf(fmt, ap);
  va_end(ap);
  return 0;
}

void inspect_diff_free(struct inspect_diff *d)
{
  for (size_t i = 0; i < d->n; i++) {
    free(d->v[i].item);
    free(d->v[i].text);
  }
  free(d->v);
  d->v = NULL;
  d->n = 0;
}

/* ---- NVRAM ------------------------------------------------------------- */

static void var_key(const struct efi_var *v, char *buf, size_t size)
{
  const char *role = nvram_var_role(v);
  char g[37];
  efi_guid_text(&v->guid, g);
  if (role)
    snprintf(buf, size, "%s", role);
  else
    snprintf(buf, size, "%s-%s", v->name, g);
}

void inspect_value_text(const uint8_t *p, size_t n, char *buf, size_t size)
{
  if (n > 16) {
    snprintf(buf, size, "%zu bytes", n);
    return;
  }
  size_t o = 0;
  for (size_t i = 0; i < n && o + 3 < size; i++)
    o += (size_t)snprintf(buf + o, size - o, "%02x", p[i]);
  if (n == 0)
    snprintf(buf, size, "empty");
  else if (n == 1 || n == 2 || n == 4 || n == 8) {
    unsigned long long v = 0;
    for (size_t i = n; i-- > 0;)
      v = v << 8 | p[i];
    snprintf(buf + o, size - o, " (%llu)", v);
  }
}

static const struct nvram_keydb *keydb_of(const struct nvram_info *ni, const char *role)
{
  for (int k = 0; k < NVRAM_NKEYS; k++)
    if (strcmp(ni->keys[k].name, role) == 0)
      return &ni->keys[k];
  return NULL;
}

/* "1 certificate added (CN=x), 2 hashes missing" of a key database. */
static void siglist_delta(const struct efi_siglist *s, const struct efi_siglist *r, char *buf,
                          size_t size)
{
  size_t cert_add = 0, cert_miss = 0, hash_add = 0, hash_miss = 0;
  const char *first_add = NULL, *first_miss = NULL;
  for (size_t i = 0; i < s->n; i++)
    if (!efi_siglist_has(r, &s->sigs[i])) {
      if (s->sigs[i].kind == EFI_SIG_X509) {
        cert_add++;
        if (!first_add)
          first_add = s->sigs[i].subject;
      } else {
        hash_add++;
      }
    }
  for (size_t i = 0; i < r->n; i++)
    if (!efi_siglist_has(s, &r->sigs[i])) {
      if (r->sigs[i].kind == EFI_SIG_X509) {
        cert_miss++;
        if (!first_miss)
          first_miss = r->sigs[i].subject;
      } else {
        hash_miss++;
      }
    }
  size_t o = 0;
  buf[0] = '\0';
  struct {
    size_t n;
    const char *what, *how, *subject;
  } parts[] = {
    { cert_add, "certificate", "added", first_add },
    { cert_miss, "certificate", "missing", first_miss },
    { hash_add, "hash", "added", NULL },
    { hash_miss, "hash", "missing", NULL },
  };
  for (size_t i = 0; i < 4; i++) {
    if (!parts[i].n || o >= size)
      continue;
    int k = snprintf(buf + o, size - o, "%s%zu %s%s %s", o ? ", " : "", parts[i].n,
                     parts[i].what, parts[i].n == 1 ? "" : (i < 2 ? "s" : "es"), parts[i].how);
    if (k > 0)
      o += (size_t)k;
    if (parts[i].subject && o < size && (k = snprintf(buf + o, size - o, " (%s%s)",
                                                      parts[i].subject,
                                                      parts[i].n > 1 ? ", ..." : "")) > 0)
      o += (size_t)k;
  }
  if (!buf[0])
    snprintf(buf, size, "same entries, other order or owners");
}

static void order_text(const struct nvram_info *ni, char *buf, size_t size)
{
  size_t o = 0;
  buf[0] = '\0';
  if (!ni->has_boot_order) {
    snprintf(buf, size, "(none)");
    return;
  }
  for (size_t i = 0; i < ni->nboot_order && o < size; i++) {
    int k = snprintf(buf + o, size - o, "%s%04X", i ? "," : "", ni->boot_order[i]);
    if (k > 0)
      o += (size_t)k;
  }
}

static const struct nvram_boot *boot_of(const struct nvram_info *ni, const char *name)
{
  uint16_t num;
  if (!efi_boot_var_name(name, &num))
    return NULL;
  for (size_t i = 0; i < ni->nboot; i++)
    if (ni->boot[i].num == num)
      return &ni->boot[i];
  return NULL;
}

static void boot_text(const struct nvram_boot *b, char *buf, size_t size)
{
  if (!b || b->error)
    snprintf(buf, size, "unreadable (%s)", b ? b->error : "?");
  else
    snprintf(buf, size, "\"%s\" %s%s", b->opt.description, b->opt.path,
             b->opt.attributes & EFI_LOAD_OPTION_ACTIVE ? "" : " (inactive)");
}

static int var_changed(const struct nvram_info *s, const struct nvram_info *r,
                       const struct efi_var *sv, const struct efi_var *rv,
                       struct inspect_diff *d, struct sp_err *e)
{
  char key[320], a[128], b[128];
  var_key(sv, key, sizeof key);
  const char *role = nvram_var_role(sv);
  const struct nvram_keydb *sk = role ? keydb_of(s, role) : NULL;
  if (sk) {
    /* Both reports hold the same key databases, so rk is there too; the
     * check is for gcc's analyzer, which cannot see that. */
    const struct nvram_keydb *rk = keydb_of(r, role);
    char delta[512];
    if (!rk || sk->error || rk->error)
      snprintf(delta, sizeof delta, "content changed (%s)",
               sk->error ? sk->error : rk ? rk->error : "?");
    else
      siglist_delta(&sk->list, &rk->list, delta, sizeof delta);
    return add(d, "nvram", key, "changed", e, "%s differs: %s", key, delta);
  }
  if (role && strcmp(role, "BootOrder") == 0) {
    char was[256], now[256];
    order_text(r, was, sizeof was);
    order_text(s, now, sizeof now);
    return add(d, "nvram", key, "changed", e, "BootOrder changed: %s, was %s", now, was);
  }
  const struct nvram_boot *sb = boot_of(s, sv->name), *rb = boot_of(r, rv->name);
  if (role && sb && rb) {
    char was[1024], now[1024];
    boot_text(sb, now, sizeof now);
    boot_text(rb, was, sizeof was);
    if (strcmp(was, now) == 0)
      return add(d, "nvram", key, "changed", e, "%s changed: optional data or attributes",
                 key);
    return add(d, "nvram", key, "changed", e, "%s changed: %s, was %s", key, now, was);
  }
  inspect_value_text(sv->data, sv->data_len, a, sizeof a);
  inspect_value_text(rv->data, rv->data_len, b, sizeof b);
  if (sv->attributes != rv->attributes && sv->data_len == rv->data_len &&
      memcmp(sv->data, rv->data, sv->data_len) == 0) {
    efi_var_attr_text(sv->attributes, a, sizeof a);
    efi_var_attr_text(rv->attributes, b, sizeof b);
    return add(d, "nvram", key, "changed", e, "variable %s changed: attributes %s, were %s",
               key, a, b);
  }
  return add(d, "nvram", key, "changed", e, "variable %s changed: %s, was %s", key, a, b);
}

static bool same_var(const struct efi_var *a, const struct efi_var *b)
{
  return a->attributes == b->attributes && a->data_len == b->data_len &&
         memcmp(a->data, b->data, a->data_len) == 0;
}

static int one_side(const struct nvram_info *has, const struct nvram_info *other,
                    const char *change, struct inspect_diff *d, struct sp_err *e)
{
  for (size_t i = 0; i < has->store.n; i++) {
    const struct efi_var *v = &has->store.vars[i];
    if (!v->live || efi_varstore_find(&other->store, v->name, &v->guid))
      continue;
    char key[320], val[128];
    var_key(v, key, sizeof key);
    inspect_value_text(v->data, v->data_len, val, sizeof val);
    const char *role = nvram_var_role(v);
    const struct nvram_keydb *k = role ? keydb_of(has, role) : NULL;
    int rc;
    if (k && !k->error)
      rc = add(d, "nvram", key, change, e, "%s %s (%zu certificate%s, %zu hash%s)", key, change,
               k->list.certificates, k->list.certificates == 1 ? "" : "s", k->list.hashes,
               k->list.hashes == 1 ? "" : "es");
    else
      rc = add(d, "nvram", key, change, e, "variable %s %s (%s)", key, change, val);
    if (rc < 0)
      return -1;
  }
  return 0;
}

int inspect_diff_nvram(const struct nvram_info *s, const struct nvram_info *r,
                       struct inspect_diff *d, struct sp_err *e)
{
  if (!s || !r) {
    if (!s && !r)
      return 0;
    return add(d, "nvram", "nvram", s ? "added" : "missing", e, "NVRAM %s",
               s ? "only in this point (none in the reference)" : "missing (the reference has one)");
  }
  if (s->secure_boot != r->secure_boot)
    if (add(d, "nvram", "secure-boot", "changed", e, "Secure Boot at next boot: %s, was %s",
            s->secure_boot ? "on" : "off", r->secure_boot ? "on" : "off") < 0)
      return -1;
  for (size_t i = 0; i < s->store.n; i++) {
    const struct efi_var *sv = &s->store.vars[i];
    const struct efi_var *rv = sv->live ? efi_varstore_find(&r->store, sv->name, &sv->guid)
                                        : NULL;
    if (rv && !same_var(sv, rv) && var_changed(s, r, sv, rv, d, e) < 0)
      return -1;
  }
  if (one_side(s, r, "added", d, e) < 0 || one_side(r, s, "missing", d, e) < 0)
    return -1;
  return 0;
}

/* ---- TPM --------------------------------------------------------------- */

static const struct tpm_nv *nv_of(const struct tpm_info *t, uint32_t h)
{
  for (size_t i = 0; i < t->nnv; i++)
    if (t->nv[i].handle == h)
      return &t->nv[i];
  return NULL;
}

static const struct tpm_object *object_of(const struct tpm_info *t, uint32_t h)
{
  for (size_t i = 0; i < t->nobjects; i++)
    if (t->objects[i].handle == h)
      return &t->objects[i];
  return NULL;
}

static void nv_value(const struct tpm_nv *nv, char *buf, size_t size)
{
  uint64_t v;
  if (!nv->read)
    snprintf(buf, size, "not readable");
  else if (tpm_nv_counter(nv, &v))
    snprintf(buf, size, "%llu", (unsigned long long)v);
  else {
    inspect_value_text(nv->data, nv->data_len, buf, size);
  }
}

static int nv_diff(const struct tpm_info *s, const struct tpm_info *r, struct inspect_diff *d,
                   struct sp_err *e)
{
  char item[32], a[256], b[256];
  for (size_t i = 0; i < s->nnv; i++) {
    const struct tpm_nv *sn = &s->nv[i], *rn = nv_of(r, sn->handle);
    snprintf(item, sizeof item, "nv 0x%08x", sn->handle);
    int rc = 0;
    if (!rn) {
      rc = add(d, "tpm", item, "added", e, "NV index 0x%08x added (%s, %u bytes)", sn->handle,
               tpm_nv_type_name(sn->attributes), sn->size);
    } else if (sn->attributes != rn->attributes || sn->size != rn->size) {
      tpm_nv_attr_text(sn->attributes, a, sizeof a);
      tpm_nv_attr_text(rn->attributes, b, sizeof b);
      rc = add(d, "tpm", item, "changed", e, "NV index 0x%08x changed: %u bytes %s, was %u "
               "bytes %s", sn->handle, sn->size, a, rn->size, b);
    } else if (sn->read && rn->read && strcmp(sn->sha256, rn->sha256) != 0) {
      nv_value(sn, a, sizeof a);
      nv_value(rn, b, sizeof b);
      rc = add(d, "tpm", item, "changed", e, "NV index 0x%08x content changed: %s, was %s",
               sn->handle, a, b);
    }
    if (rc < 0)
      return -1;
  }
  for (size_t i = 0; i < r->nnv; i++) {
    if (nv_of(s, r->nv[i].handle))
      continue;
    snprintf(item, sizeof item, "nv 0x%08x", r->nv[i].handle);
    if (add(d, "tpm", item, "missing", e, "NV index 0x%08x missing", r->nv[i].handle) < 0)
      return -1;
  }
  return 0;
}

static int object_diff(const struct tpm_info *s, const struct tpm_info *r,
                       struct inspect_diff *d, struct sp_err *e)
{
  char item[32];
  for (size_t i = 0; i < s->nobjects; i++) {
    const struct tpm_object *so = &s->objects[i], *ro = object_of(r, so->handle);
    snprintf(item, sizeof item, "key 0x%08x", so->handle);
    int rc = 0;
    if (!ro)
      rc = add(d, "tpm", item, "added", e, "persistent key 0x%08x added (%s)", so->handle,
               tpm_alg_name(so->type));
    else if (strcmp(so->name, ro->name) != 0)
      rc = add(d, "tpm", item, "changed", e, "persistent key 0x%08x is another key (its name "
               "differs)", so->handle);
    if (rc < 0)
      return -1;
  }
  for (size_t i = 0; i < r->nobjects; i++) {
    if (object_of(s, r->objects[i].handle))
      continue;
    snprintf(item, sizeof item, "key 0x%08x", r->objects[i].handle);
    if (add(d, "tpm", item, "missing", e, "persistent key 0x%08x missing",
            r->objects[i].handle) < 0)
      return -1;
  }
  return 0;
}

static void banks_text(const struct tpm_info *t, char *buf, size_t size)
{
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < t->nbanks && o < size; i++) {
    if (!t->banks[i].pcrs)
      continue;
    int k = snprintf(buf + o, size - o, "%s%s", o ? "," : "", tpm_alg_name(t->banks[i].alg));
    if (k > 0)
      o += (size_t)k;
  }
  if (!buf[0])
    snprintf(buf, size, "none");
}

int inspect_diff_tpm(const struct tpm_info *s, const struct tpm_info *r, struct inspect_diff *d,
                     struct sp_err *e)
{
  if (!s || !r) {
    if (!s && !r)
      return 0;
    return add(d, "tpm", "tpm", s ? "added" : "missing", e, "TPM state %s",
               s ? "only in this point (none in the reference)"
                 : "missing (the reference has one)");
  }
  if (strcmp(s->version, r->version) != 0)
    return add(d, "tpm", "version", "changed", e, "TPM version %s, was %s", s->version,
               r->version);
  if (!s->queried || !r->queried)
    return 0;
  static const struct {
    uint32_t bit;
    const char *what;
  } auths[] = {
    { TPMA_PERMANENT_OWNERAUTHSET, "owner" },
    { TPMA_PERMANENT_ENDORSEMENTAUTHSET, "endorsement" },
    { TPMA_PERMANENT_LOCKOUTAUTHSET, "lockout" },
  };
  for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
    bool sa = s->permanent & auths[i].bit, ra = r->permanent & auths[i].bit;
    char item[32];
    snprintf(item, sizeof item, "%s-auth", auths[i].what);
    if (sa != ra && add(d, "tpm", item, "changed", e, "%s authorization %s, was %s",
                        auths[i].what, sa ? "set" : "not set", ra ? "set" : "not set") < 0)
      return -1;
  }
  char a[128], b[128];
  banks_text(s, a, sizeof a);
  banks_text(r, b, sizeof b);
  if (strcmp(a, b) != 0 && add(d, "tpm", "pcr-banks", "changed", e,
                               "PCR banks %s, were %s", a, b) < 0)
    return -1;
  if (nv_diff(s, r, d, e) < 0 || object_diff(s, r, d, e) < 0)
    return -1;
  return 0;
}
