/* libFuzzer harness: manifest.json of a point (agent/manifest.c), read
 * from an untrusted backup.  What parses must serialize, parse again and
 * serialize to the same text (prune rewrites manifests it read), and every
 * path in it must stay inside the point. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_paths(const struct sp_manifest *m)
{
  for (size_t i = 0; i < m->ndisks; i++) {
    const struct sp_manifest_disk *d = &m->disks[i];
    if (m->format == SP_MANIFEST_FORMAT_RBD) {
      /* A point in Ceph: its disks are RBD snapshots, never files; the
       * names go to librbd, so no '/' or '@' may reach it. */
      if (d->file || !d->rbd_image || !d->rbd_snapshot || !sp_target_valid(d->target) ||
          strpbrk(d->rbd_image, "/@") || strpbrk(d->rbd_snapshot, "/@"))
        abort();
      continue;
    }
    if (!sp_relpath_ok(d->file) || strncmp(d->file, "disks/", 6) != 0 ||
        !sp_target_valid(d->target) || !d->image_format ||
        (strcmp(d->image_format, "qcow2") != 0 && strcmp(d->image_format, "raw") != 0) ||
        (d->parent_file && strncmp(d->parent_file, "../../", 6) != 0))
      abort();
  }
  const struct sp_manifest_state *st[] = { &m->nvram, &m->tpm };
  for (int k = 0; k < 2; k++) {
    if (!st[k]->present)
      continue;
    if (!sp_relpath_ok(st[k]->path) || st[k]->host_path[0] != '/')
      abort();
    for (size_t i = 0; i < st[k]->nfiles; i++)
      if (!sp_name_ok(st[k]->files[i].name))
        abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sp_manifest m, m2;
  struct sp_err e = { 0 };
  if (sp_manifest_parse((const char *)data, size, &m, &e) < 0) {
    if (!e.msg[0])
      abort(); /* a refusal always says why */
    return 0;
  }
  check_paths(&m);
  char *out = NULL, *out2 = NULL;
  if (sp_manifest_to_json(&m, &out, &e) < 0)
    abort();
  if (sp_manifest_parse(out, strlen(out), &m2, &e) < 0)
    abort(); /* stillpoint must read what it writes */
  if (sp_manifest_to_json(&m2, &out2, &e) < 0 || strcmp(out, out2) != 0)
    abort();
  free(out);
  free(out2);
  sp_manifest_free(&m2);
  sp_manifest_free(&m);
  return 0;
}
