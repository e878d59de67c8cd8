#include "qemu_img.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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

static void info_close(struct image_info_run *run)
{
  if (run->out_fd >= 0)
    close(run->out_fd);
  if (run->err_fd >= 0)
    close(run->err_fd);
  run->out_fd = run->err_fd = -1;
  run->pid = -1;
}

/* Its output goes to memfds, never to a pipe nobody reads while the
 * output is being created: a long chain's JSON cannot block it. */
int qemu_img_info_start(const char *qemu_img, const char *path, struct image_info_run *run,
                        struct sp_err *e)
{
  char *argv[] = { (char *)qemu_img, "info", "--output=json", "--backing-chain",
                   (char *)path, NULL };
  run->out_fd = memfd_create("qemu-img-info-out", MFD_CLOEXEC);
  run->err_fd = memfd_create("qemu-img-info-err", MFD_CLOEXEC);
  if (run->out_fd < 0 || run->err_fd < 0) {
    int err = errno;
    info_close(run);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "memfd_create");
  }
  run->pid = sp_spawn(argv, NULL, run->out_fd, run->err_fd, e);
  if (run->pid < 0) {
    info_close(run);
    return -1;
  }
  return 0;
}

int qemu_img_info_finish(struct image_info_run *run, const char *path, struct image_info *info,
                         struct sp_err *e)
{
  int ws = 0;
  while (waitpid(run->pid, &ws, 0) < 0 && errno == EINTR)
    ;
  _cleanup_free_ char *out = sp_child_output(run->out_fd, 1 << 24, NULL);
  _cleanup_free_ char *err = sp_child_output(run->err_fd, 1 << 24, NULL);
  info_close(run);
  if (sp_exit_status(ws) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s", last_line(err));
  _cleanup_json_ json_object *chain = out ? json_tokener_parse(out) : NULL;
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

void qemu_img_info_stop(struct image_info_run *run)
{
  if (run->pid > 0) {
    kill(run->pid, SIGKILL);
    while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
      ;
  }
  info_close(run);
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
