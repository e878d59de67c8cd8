#include "inspect_output.h"

#include <stdlib.h>
#include <string.h>

static void human_size(size_t n, char *buf, size_t size)
{
  if (n < 1024)
    snprintf(buf, size, "%zu B", n);
  else
    snprintf(buf, size, "%.1f KiB", (double)n / 1024);
}

static void hex_of(const uint8_t *p, size_t n, char *buf)
{
  for (size_t i = 0; i < n; i++)
    snprintf(buf + 2 * i, 3, "%02x", p[i]);
  buf[2 * n] = '\0';
}

/* ---- human ------------------------------------------------------------- */

static void print_keydb(FILE *f, const struct nvram_keydb *k)
{
  if (!k->present) {
    fprintf(f, "  %-13s absent\n", k->name);
    return;
  }
  if (k->error) {
    fprintf(f, "  %-13s unreadable: %s\n", k->name, k->error);
    return;
  }
  fprintf(f, "  %-13s %zu certificate%s, %zu hash%s\n", k->name, k->list.certificates,
          k->list.certificates == 1 ? "" : "s", k->list.hashes,
          k->list.hashes == 1 ? "" : "es");
  for (size_t i = 0; i < k->list.n; i++) {
    const struct efi_sig *s = &k->list.sigs[i];
    if (s->kind != EFI_SIG_X509)
      continue;
    fprintf(f, "  %-13s   %s%s%s%s\n", "", s->subject ? s->subject : "(unreadable certificate)",
            s->not_after ? " (until " : "", s->not_after ? s->not_after : "",
            s->not_after ? ")" : "");
  }
}

void inspect_print_nvram(FILE *f, const struct nvram_info *ni)
{
  char store[32], free_b[32], recl[32];
  human_size(ni->store.store_size, store, sizeof store);
  human_size(ni->store.free_bytes, free_b, sizeof free_b);
  human_size(ni->store.reclaimable, recl, sizeof recl);
  fprintf(f, "  %-13s %s, %s: %zu variables (%zu records), %s free, %s reclaimable at boot\n",
          "store", ni->store.authenticated ? "authenticated" : "plain", store, ni->store.nlive,
          ni->store.n, free_b, recl);
  if (ni->setup_mode)
    fprintf(f, "  %-13s off at next boot: setup mode (no PK enrolled)\n", "Secure Boot");
  else if (ni->secure_boot)
    fprintf(f, "  %-13s on at next boot: user mode (PK enrolled, SecureBootEnable %s)\n",
            "Secure Boot", ni->secure_boot_enable < 0 ? "absent" : "1");
  else
    fprintf(f, "  %-13s off at next boot: PK enrolled but SecureBootEnable is 0\n",
            "Secure Boot");
  for (int k = 0; k < NVRAM_NKEYS; k++)
    print_keydb(f, &ni->keys[k]);
  if (ni->has_boot_order) {
    fprintf(f, "  %-13s", "BootOrder");
    for (size_t i = 0; i < ni->nboot_order; i++)
      fprintf(f, "%s%04X", i ? "," : " ", ni->boot_order[i]);
    fprintf(f, "%s\n", ni->nboot_order ? "" : " (empty)");
  } else {
    fprintf(f, "  %-13s absent (the firmware makes one at boot)\n", "BootOrder");
  }
  if (ni->boot_next >= 0)
    fprintf(f, "  %-13s %04X\n", "BootNext", ni->boot_next);
  for (size_t i = 0; i < ni->nboot; i++) {
    const struct nvram_boot *b = &ni->boot[i];
    char name[16];
    snprintf(name, sizeof name, "Boot%04X", b->num);
    if (b->error)
      fprintf(f, "  %-13s unreadable: %s\n", name, b->error);
    else
      fprintf(f, "  %-13s %s\"%s\" %s\n", name,
              b->opt.attributes & EFI_LOAD_OPTION_ACTIVE ? "" : "(inactive) ",
              b->opt.description, b->opt.path);
  }
  fprintf(f, "  variables\n");
  for (size_t i = 0; i < ni->store.n; i++) {
    const struct efi_var *v = &ni->store.vars[i];
    if (!v->live)
      continue;
    char g[37], attrs[64], val[128];
    efi_guid_text(&v->guid, g);
    efi_var_attr_text(v->attributes, attrs, sizeof attrs);
    inspect_value_text(v->data, v->data_len, val, sizeof val);
    fprintf(f, "    %-22s %s %-11s %s\n", v->name, g, attrs, val);
  }
}

void inspect_print_tpm(FILE *f, const struct tpm_info *ti)
{
  if (!ti->queried) {
    fprintf(f, "  %-13s %s\n", "version", ti->version);
    if (ti->note)
      fprintf(f, "  %-13s %s\n", "note", ti->note);
    return;
  }
  fprintf(f, "  %-13s %s (spec level %u revision %u.%02u, %u), %s \"%s\" firmware %08x.%08x\n",
          "version", ti->version, ti->spec_level, ti->spec_revision / 100,
          ti->spec_revision % 100, ti->spec_year, ti->manufacturer, ti->vendor, ti->firmware1,
          ti->firmware2);
  char why[256];
  bool prov = tpm_info_provisioned(ti, why, sizeof why);
  fprintf(f, "  %-13s %s%s%s\n", "provisioned", prov ? "yes: " : "no", prov ? why : "",
          prov ? "" : " (no authorization set, no persistent storage key)");
  fprintf(f, "  %-13s %llu ms run, %u resets, %u restarts; lockout counter %u of %u\n",
          "use", (unsigned long long)ti->clock, ti->reset_count, ti->restart_count,
          ti->lockout_counter, ti->max_auth_fail);
  fprintf(f, "  %-13s", "PCR banks");
  size_t shown = 0;
  for (size_t i = 0; i < ti->nbanks; i++)
    if (ti->banks[i].pcrs)
      fprintf(f, "%s%s (%u PCRs)", shown++ ? ", " : " ", tpm_alg_name(ti->banks[i].alg),
              ti->banks[i].pcrs);
  fprintf(f, "%s\n", shown ? "" : " none allocated");
  fprintf(f, "  %-13s %zu\n", "NV indexes", ti->nnv);
  for (size_t i = 0; i < ti->nnv; i++) {
    const struct tpm_nv *nv = &ti->nv[i];
    char attrs[256], val[128] = "";
    tpm_nv_attr_text(nv->attributes, attrs, sizeof attrs);
    uint64_t v;
    if (tpm_nv_counter(nv, &v)) {
      snprintf(val, sizeof val, "value %llu", (unsigned long long)v);
    } else if (nv->read) {
      snprintf(val, sizeof val, "sha256 %.16s...", nv->sha256);
    } else if (!(nv->attributes & TPM_INFO_NV_WRITTEN)) {
      snprintf(val, sizeof val, "never written");
    } else {
      snprintf(val, sizeof val, "not readable without authorization");
    }
    fprintf(f, "    0x%08x  %-8s %5u bytes  %s  %s\n", nv->handle,
            tpm_nv_type_name(nv->attributes), nv->size, val, attrs);
  }
  fprintf(f, "  %-13s %zu\n", "persistent", ti->nobjects);
  for (size_t i = 0; i < ti->nobjects; i++) {
    const struct tpm_object *o = &ti->objects[i];
    char attrs[256], kind[64];
    tpm_object_attr_text(o->attributes, attrs, sizeof attrs);
    if (o->bits)
      snprintf(kind, sizeof kind, "%s%u", tpm_alg_name(o->type), o->bits);
    else if (o->curve)
      snprintf(kind, sizeof kind, "%s %s", tpm_alg_name(o->type), tpm_curve_name(o->curve));
    else
      snprintf(kind, sizeof kind, "%s", tpm_alg_name(o->type));
    fprintf(f, "    0x%08x  %-11s %-16s %s\n", o->handle, tpm_handle_range(o->handle), kind,
            attrs);
  }
}

void inspect_print_diff(FILE *f, const struct inspect_diff *d)
{
  for (size_t i = 0; i < d->n; i++)
    fprintf(f, "  %-6s %s\n", d->v[i].area, d->v[i].text);
}

/* ---- JSON -------------------------------------------------------------- */

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *keydb_json(const struct nvram_keydb *k)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "present", json_object_new_boolean(k->present));
  if (!k->present)
    return o;
  json_object_object_add(o, "error", jstr(k->error));
  json_object_object_add(o, "certificates", json_object_new_int64((int64_t)k->list.certificates));
  json_object_object_add(o, "hashes", json_object_new_int64((int64_t)k->list.hashes));
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < k->list.n; i++) {
    const struct efi_sig *s = &k->list.sigs[i];
    json_object *e = json_object_new_object();
    char owner[37];
    efi_guid_text(&s->owner, owner);
    json_object_object_add(e, "type", jstr(s->type));
    json_object_object_add(e, "owner", jstr(owner));
    json_object_object_add(e, "sha256", jstr(s->sha256));
    json_object_object_add(e, "size", json_object_new_int64((int64_t)s->size));
    if (s->kind == EFI_SIG_X509) {
      json_object_object_add(e, "subject", jstr(s->subject));
      json_object_object_add(e, "not_after", jstr(s->not_after));
    }
    json_object_array_add(a, e);
  }
  json_object_object_add(o, "entries", a);
  return o;
}

json_object *inspect_json_nvram(const struct nvram_info *ni)
{
  json_object *o = json_object_new_object();
  json_object *st = json_object_new_object();
  json_object_object_add(st, "format", jstr(ni->store.authenticated ? "authenticated" : "plain"));
  json_object_object_add(st, "size", json_object_new_int64((int64_t)ni->store.store_size));
  json_object_object_add(st, "variables", json_object_new_int64((int64_t)ni->store.nlive));
  json_object_object_add(st, "records", json_object_new_int64((int64_t)ni->store.n));
  json_object_object_add(st, "free", json_object_new_int64((int64_t)ni->store.free_bytes));
  json_object_object_add(st, "reclaimable", json_object_new_int64((int64_t)ni->store.reclaimable));
  json_object_object_add(o, "store", st);
  json_object *sb = json_object_new_object();
  json_object_object_add(sb, "secure_boot", json_object_new_boolean(ni->secure_boot));
  json_object_object_add(sb, "setup_mode", json_object_new_boolean(ni->setup_mode));
  json_object_object_add(sb, "secure_boot_enable",
                         ni->secure_boot_enable < 0 ? NULL
                                                    : json_object_new_int(ni->secure_boot_enable));
  json_object_object_add(sb, "custom_mode", json_object_new_boolean(ni->custom_mode));
  for (int k = 0; k < NVRAM_NKEYS; k++)
    json_object_object_add(sb, ni->keys[k].name, keydb_json(&ni->keys[k]));
  json_object_object_add(o, "secure_boot", sb);
  json_object *boot = json_object_new_object();
  json_object *order = NULL;
  if (ni->has_boot_order) {
    order = json_object_new_array();
    for (size_t i = 0; i < ni->nboot_order; i++) {
      char n[8];
      snprintf(n, sizeof n, "%04X", ni->boot_order[i]);
      json_object_array_add(order, jstr(n));
    }
  }
  json_object_object_add(boot, "order", order);
  char next[8];
  snprintf(next, sizeof next, "%04X", (unsigned)(ni->boot_next >= 0 ? ni->boot_next : 0) & 0xFFFF);
  json_object_object_add(boot, "next", ni->boot_next >= 0 ? jstr(next) : NULL);
  json_object *entries = json_object_new_array();
  for (size_t i = 0; i < ni->nboot; i++) {
    const struct nvram_boot *b = &ni->boot[i];
    json_object *e = json_object_new_object();
    char n[8];
    snprintf(n, sizeof n, "%04X", b->num);
    json_object_object_add(e, "number", jstr(n));
    json_object_object_add(e, "error", jstr(b->error));
    if (!b->error) {
      json_object_object_add(e, "description", jstr(b->opt.description));
      json_object_object_add(e, "path", jstr(b->opt.path));
      json_object_object_add(e, "active",
                             json_object_new_boolean(b->opt.attributes & EFI_LOAD_OPTION_ACTIVE));
      json_object_object_add(e, "attributes", json_object_new_int64(b->opt.attributes));
      json_object_object_add(e, "optional_data", json_object_new_int64((int64_t)b->opt.optional_len));
    }
    json_object_array_add(entries, e);
  }
  json_object_object_add(boot, "entries", entries);
  json_object_object_add(o, "boot", boot);
  json_object *vars = json_object_new_array();
  for (size_t i = 0; i < ni->store.n; i++) {
    const struct efi_var *v = &ni->store.vars[i];
    if (!v->live)
      continue;
    json_object *e = json_object_new_object();
    char g[37], attrs[64], sha[SP_SHA256_HEX_LEN + 1];
    efi_guid_text(&v->guid, g);
    efi_var_attr_text(v->attributes, attrs, sizeof attrs);
    sp_sha256_hex(v->data, v->data_len, sha);
    json_object_object_add(e, "name", jstr(v->name));
    json_object_object_add(e, "guid", jstr(g));
    json_object_object_add(e, "attributes", jstr(attrs));
    json_object_object_add(e, "size", json_object_new_int64((int64_t)v->data_len));
    json_object_object_add(e, "sha256", jstr(sha));
    if (v->data_len <= 64) {
      char hex[129];
      hex_of(v->data, v->data_len, hex);
      json_object_object_add(e, "data", jstr(hex));
    }
    json_object_array_add(vars, e);
  }
  json_object_object_add(o, "variables", vars);
  return o;
}

json_object *inspect_json_tpm(const struct tpm_info *ti)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "version", jstr(ti->version));
  json_object_object_add(o, "queried", json_object_new_boolean(ti->queried));
  json_object_object_add(o, "note", jstr(ti->note));
  if (!ti->queried)
    return o;
  json_object_object_add(o, "manufacturer", jstr(ti->manufacturer));
  json_object_object_add(o, "vendor", jstr(ti->vendor));
  char fw[32];
  snprintf(fw, sizeof fw, "%08x.%08x", ti->firmware1, ti->firmware2);
  json_object_object_add(o, "firmware", jstr(fw));
  json_object_object_add(o, "spec_level", json_object_new_int64(ti->spec_level));
  json_object_object_add(o, "spec_revision", json_object_new_int64(ti->spec_revision));
  json_object_object_add(o, "spec_year", json_object_new_int64(ti->spec_year));
  char why[256];
  bool prov = tpm_info_provisioned(ti, why, sizeof why);
  json_object_object_add(o, "provisioned", json_object_new_boolean(prov));
  json_object_object_add(o, "provisioned_because", prov ? jstr(why) : NULL);
  json_object_object_add(o, "permanent", json_object_new_int64(ti->permanent));
  json_object_object_add(o, "lockout_counter", json_object_new_int64(ti->lockout_counter));
  json_object_object_add(o, "max_auth_fail", json_object_new_int64(ti->max_auth_fail));
  json_object_object_add(o, "clock_ms", json_object_new_int64((int64_t)ti->clock));
  json_object_object_add(o, "reset_count", json_object_new_int64(ti->reset_count));
  json_object_object_add(o, "restart_count", json_object_new_int64(ti->restart_count));
  json_object *banks = json_object_new_array();
  for (size_t i = 0; i < ti->nbanks; i++) {
    json_object *b = json_object_new_object();
    json_object_object_add(b, "hash", jstr(tpm_alg_name(ti->banks[i].alg)));
    json_object_object_add(b, "pcrs", json_object_new_int64(ti->banks[i].pcrs));
    json_object_array_add(banks, b);
  }
  json_object_object_add(o, "pcr_banks", banks);
  json_object *nvs = json_object_new_array();
  for (size_t i = 0; i < ti->nnv; i++) {
    const struct tpm_nv *nv = &ti->nv[i];
    json_object *n = json_object_new_object();
    char h[16], attrs[256];
    snprintf(h, sizeof h, "0x%08x", nv->handle);
    tpm_nv_attr_text(nv->attributes, attrs, sizeof attrs);
    json_object_object_add(n, "handle", jstr(h));
    json_object_object_add(n, "type", jstr(tpm_nv_type_name(nv->attributes)));
    json_object_object_add(n, "size", json_object_new_int64(nv->size));
    json_object_object_add(n, "attributes", jstr(attrs));
    json_object_object_add(n, "name_alg", jstr(tpm_alg_name(nv->name_alg)));
    json_object_object_add(n, "read", json_object_new_boolean(nv->read));
    if (nv->read) {
      json_object_object_add(n, "sha256", jstr(nv->sha256));
      if (nv->data_len <= 64) {
        char hex[129];
        hex_of(nv->data, nv->data_len, hex);
        json_object_object_add(n, "data", jstr(hex));
      }
      uint64_t v;
      if (tpm_nv_counter(nv, &v))
        json_object_object_add(n, "value", json_object_new_uint64(v));
    }
    json_object_array_add(nvs, n);
  }
  json_object_object_add(o, "nv_indexes", nvs);
  json_object *objs = json_object_new_array();
  for (size_t i = 0; i < ti->nobjects; i++) {
    const struct tpm_object *ob = &ti->objects[i];
    json_object *n = json_object_new_object();
    char h[16], attrs[256];
    snprintf(h, sizeof h, "0x%08x", ob->handle);
    tpm_object_attr_text(ob->attributes, attrs, sizeof attrs);
    json_object_object_add(n, "handle", jstr(h));
    json_object_object_add(n, "hierarchy", jstr(tpm_handle_range(ob->handle)));
    json_object_object_add(n, "type", jstr(tpm_alg_name(ob->type)));
    json_object_object_add(n, "bits", ob->bits ? json_object_new_int(ob->bits) : NULL);
    json_object_object_add(n, "curve", ob->curve ? jstr(tpm_curve_name(ob->curve)) : NULL);
    json_object_object_add(n, "name_alg", jstr(tpm_alg_name(ob->name_alg)));
    json_object_object_add(n, "attributes", jstr(attrs));
    json_object_object_add(n, "name", jstr(ob->name));
    json_object_array_add(objs, n);
  }
  json_object_object_add(o, "persistent", objs);
  return o;
}

json_object *inspect_json_diff(const struct inspect_diff *d)
{
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < d->n; i++) {
    json_object *c = json_object_new_object();
    json_object_object_add(c, "area", jstr(d->v[i].area));
    json_object_object_add(c, "item", jstr(d->v[i].item));
    json_object_object_add(c, "change", jstr(d->v[i].change));
    json_object_object_add(c, "text", jstr(d->v[i].text));
    json_object_array_add(a, c);
  }
  return a;
}
