#include "nvram_info.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* edk2's gEfiSecureBootEnableDisableGuid and gEfiCustomModeEnableGuid. */
#define SECURE_BOOT_ENABLE_GUID "f0a30bc7-af08-4556-99c4-001009c93a44"
#define CUSTOM_MODE_GUID "c076ec0c-7028-4399-a072-71ee5c448b9f"

static const struct {
  const char *name;
  const efi_guid_t *guid;
} key_vars[NVRAM_NKEYS] = {
  [NVRAM_PK] = { "PK", &efi_guid_global },
  [NVRAM_KEK] = { "KEK", &efi_guid_global },
  [NVRAM_DB] = { "db", &efi_guid_security },
  [NVRAM_DBX] = { "dbx", &efi_guid_security },
};

static bool guid_is(const efi_guid_t *g, const char *text)
{
  efi_guid_t want;
  return efi_str_to_guid(text, &want) >= 0 && memcmp(g, &want, sizeof want) == 0;
}

const char *nvram_var_role(const struct efi_var *v)
{
  static const char *const global[] = { "PK", "KEK", "BootOrder", "BootNext", "Timeout",
                                        "PlatformLang", "Lang", "ConIn", "ConOut", "ErrOut" };
  uint16_t num;
  if (memcmp(&v->guid, &efi_guid_global, sizeof v->guid) == 0) {
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
      if (strcmp(v->name, global[i]) == 0)
        return global[i];
    if (efi_boot_var_name(v->name, &num))
      return v->name;
  }
  if (memcmp(&v->guid, &efi_guid_security, sizeof v->guid) == 0 &&
      (strcmp(v->name, "db") == 0 || strcmp(v->name, "dbx") == 0))
    return v->name;
  if (strcmp(v->name, "SecureBootEnable") == 0 && guid_is(&v->guid, SECURE_BOOT_ENABLE_GUID))
    return "SecureBootEnable";
  if (strcmp(v->name, "CustomMode") == 0 && guid_is(&v->guid, CUSTOM_MODE_GUID))
    return "CustomMode";
  return NULL;
}

static void read_keys(struct nvram_info *ni)
{
  for (int k = 0; k < NVRAM_NKEYS; k++) {
    struct nvram_keydb *db = &ni->keys[k];
    db->name = key_vars[k].name;
    const struct efi_var *v = efi_varstore_find(&ni->store, key_vars[k].name, key_vars[k].guid);
    if (!v)
      continue;
    db->present = true;
    struct sp_err e = { 0 };
    if (efi_siglist_parse(v->data, v->data_len, &db->list, &e) < 0)
      db->error = sp_xstrdup(e.msg);
  }
}

static int one_byte(const struct nvram_info *ni, const char *name, const char *guid)
{
  efi_guid_t g;
  if (efi_str_to_guid(guid, &g) < 0)
    return -1;
  const struct efi_var *v = efi_varstore_find(&ni->store, name, &g);
  return v && v->data_len >= 1 ? v->data[0] : -1;
}

static int by_num(const void *a, const void *b)
{
  const struct nvram_boot *x = a, *y = b;
  return (x->num > y->num) - (x->num < y->num);
}

static int read_boot(struct nvram_info *ni, struct sp_err *e)
{
  ni->boot_next = -1;
  const struct efi_var *v = efi_varstore_find(&ni->store, "BootOrder", &efi_guid_global);
  if (v) {
    ni->has_boot_order = true;
    struct sp_err ignored = { 0 };
    /* An odd-sized BootOrder is shown as absent entries, not refused. */
    efi_bootorder_parse(v->data, v->data_len - v->data_len % 2, &ni->boot_order,
                        &ni->nboot_order, &ignored);
  }
  v = efi_varstore_find(&ni->store, "BootNext", &efi_guid_global);
  if (v && v->data_len == 2)
    ni->boot_next = v->data[0] | v->data[1] << 8;
  size_t cap = 0;
  for (size_t i = 0; i < ni->store.n; i++) {
    const struct efi_var *b = &ni->store.vars[i];
    uint16_t num;
    if (!b->live || memcmp(&b->guid, &efi_guid_global, sizeof b->guid) != 0 ||
        !efi_boot_var_name(b->name, &num))
      continue;
    if (ni->nboot == cap) {
      cap = cap ? cap * 2 : 8;
      ni->boot = sp_xreallocarray(ni->boot, cap, sizeof *ni->boot);
    }
    struct nvram_boot *entry = &ni->boot[ni->nboot++];
    memset(entry, 0, sizeof *entry);
    entry->num = num;
    struct sp_err pe = { 0 };
    if (efi_loadopt_parse(b->data, b->data_len, &entry->opt, &pe) < 0)
      entry->error = sp_xstrdup(pe.msg);
  }
  if (ni->nboot)
    qsort(ni->boot, ni->nboot, sizeof *ni->boot, by_num);
  return 0;
}

int nvram_info_parse(uint8_t *image, size_t len, struct nvram_info *ni, struct sp_err *e)
{
  memset(ni, 0, sizeof *ni);
  ni->image = image;
  ni->image_len = len;
  ni->boot_next = -1;
  int rc = efi_varstore_parse(image, len, &ni->store, e);
  if (rc == 0)
    read_keys(ni);
  if (rc == 0)
    rc = read_boot(ni, e);
  if (rc < 0) {
    nvram_info_free(ni);
    return -1;
  }
  ni->setup_mode = !ni->keys[NVRAM_PK].present;
  ni->secure_boot_enable = one_byte(ni, "SecureBootEnable", SECURE_BOOT_ENABLE_GUID);
  ni->custom_mode = one_byte(ni, "CustomMode", CUSTOM_MODE_GUID) == 1;
  ni->secure_boot = !ni->setup_mode && ni->secure_boot_enable != 0;
  return 0;
}

void nvram_info_free(struct nvram_info *ni)
{
  for (int k = 0; k < NVRAM_NKEYS; k++) {
    efi_siglist_free(&ni->keys[k].list);
    free(ni->keys[k].error);
  }
  for (size_t i = 0; i < ni->nboot; i++) {
    efi_loadopt_free(&ni->boot[i].opt);
    free(ni->boot[i].error);
  }
  free(ni->boot);
  free(ni->boot_order);
  efi_varstore_free(&ni->store);
  free(ni->image);
  memset(ni, 0, sizeof *ni);
}
