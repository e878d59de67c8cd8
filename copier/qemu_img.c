#include "qemu_img.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "child.h"
#include "cleanup.h"
#include "cleanup_json.h"
#include "options.h"



/* The last non-empty line of a tool's stderr: qemu-img puts the reason there. */
static const char *last_line(char *s)
{
  size_t n = s ? strlen(s) : 0;
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
    s[--n] = '\0';
  if (!n)
    return "no message";
  char *nl = strrchr(s, '\n');
  return nl ? nl + 1 : s;
}

int qemu_img_info(const char *qemu_img, const char *path, struct image_info *info,
                  struct sp_err *e)
{
  char *argv[] = { (char *)qemu_img, "info", "--output=json", "--backing-chain",
                   (char *)path, NULL };
  _cleanup_(sp_run_result_free) struct sp_run_result r = { 0 };
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  if (r.status != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s", last_line(r.err));
  _cleanup_json_ json_object *chain = json_tokener_parse(r.out);
  json_object *top = json_object_is_type(chain, json_type_array)
                       ? json_object_array_get_idx(chain, 0) : NULL;
  json_object *fmt = NULL, *vsize = NULL;
  if (!top || !json_object_object_get_ex(top, "format", &fmt) ||
      !json_object_object_get_ex(top, "virtual-size", &vsize))
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-img info %s: unexpected output", path);
  snprintf(info->format, sizeof info->format, "%s", json_object_get_string(fmt));
  info->virtual_size = (uint64_t)json_object_get_int64(vsize);
  return 0;
}

int qemu_img_create(const char *qemu_img, const char *path, uint64_t size, const char *backing,
                    bool compress, struct sp_err *e)
{
  char sz[32], opts[96];
  snprintf(sz, sizeof sz, "%" PRIu64, size);
  snprintf(opts, sizeof opts, "cluster_size=%u%s", SP_COPY_CLUSTER,
           compress ? ",compression_type=zstd" : "");
  char *argv[16];
  size_t n = 0;
  argv[n++] = (char *)qemu_img;
  argv[n++] = "create";
  argv[n++] = "-q";
  argv[n++] = "-f";
  argv[n++] = "qcow2";
  argv[n++] = "-o";
  argv[n++] = opts;
  if (backing) {
    argv[n++] = "-b";
    argv[n++] = (char *)backing;
    argv[n++] = "-F";
    argv[n++] = "qcow2";
  }
  argv[n++] = (char *)path;
  argv[n++] = sz;
  argv[n] = NULL;
  _cleanup_(sp_run_result_free) struct sp_run_result r = { 0 };
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  if (r.status != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-img create %s: %s", path, last_line(r.err));
  return 0;
}

int qemu_img_shrink(const char *qemu_img, const char *path, uint64_t size, struct sp_err *e)
{
  char sz[32];
  snprintf(sz, sizeof sz, "%" PRIu64, size);
  char *argv[] = { (char *)qemu_img, "resize", "-q", "--shrink", "-f", "qcow2", (char *)path,
                   sz, NULL };
  _cleanup_(sp_run_result_free) struct sp_run_result r = { 0 };
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  if (r.status != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-img resize %s: %s", path, last_line(r.err));
  return 0;
}
