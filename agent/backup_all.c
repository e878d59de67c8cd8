#include "backup_all.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "hypervisor.h"
#include "task_pool.h"
#include "virt.h"

struct vm_entry {
  char *name;
  const char *skipped;   /* why it is not backed up, NULL when it is */
  struct task *task;
};

static int by_name(const void *a, const void *b)
{
  return strcmp(((const struct vm_entry *)a)->name, ((const struct vm_entry *)b)->name);
}

/* The same command line for one VM: this program, `backup NAME --json`,
 * and the options this run was given - as argv, never through a shell. */
static void vm_argv(const struct cli *c, const char *self, const char *name, const char *level,
                    const char *target, struct sp_strv *argv)
{
  argv_add(argv, self);
  argv_add(argv, "backup");
  argv_add(argv, name);
  argv_add(argv, "--json");
  if (c->uri) {
    argv_add(argv, "-c");
    argv_add(argv, c->uri);
  }
  if (c->ssh_key) {
    argv_add(argv, "--ssh-key");
    argv_add(argv, c->ssh_key);
  }
  if (c->config_file) {
    argv_add(argv, "--config");
    argv_add(argv, c->config_file);
  }
  for (size_t i = 0; i < c->nsets; i++) {
    argv_add(argv, "--set");
    argv_add(argv, c->sets[i]);
  }
  if (level) {
    argv_add(argv, "--level");
    argv_add(argv, level);
  }
  if (target) {
    argv_add(argv, "--target");
    argv_add(argv, target);
  }
  if (c->log.quiet)
    argv_add(argv, "-q");
}

static void report(const struct cli *c, struct vm_entry *v, size_t n, bool all_ok)
{
  json_object *arr = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "domain", json_object_new_string(v[i].name));
    const char *status = v[i].skipped ? "skipped" : v[i].task->status == 0 ? "ok" : "failed";
    json_object_object_add(o, "status", json_object_new_string(status));
    if (v[i].skipped) {
      json_object_object_add(o, "reason", json_object_new_string(v[i].skipped));
      sp_info(&c->log, "%-24s skipped: %s", v[i].name, v[i].skipped);
    } else {
      json_object_object_add(o, "exit", json_object_new_int(v[i].task->status));
      json_object *child = v[i].task->out ? json_tokener_parse(v[i].task->out) : NULL, *p;
      const char *path = child && json_object_object_get_ex(child, "path", &p)
                           ? json_object_get_string(p) : NULL;
      if (path)
        json_object_object_add(o, "point", json_object_new_string(path));
      if (child)
        json_object_object_add(o, "manifest", child);
      if (v[i].task->status == 0)
        sp_info(&c->log, "%-24s ok: %s", v[i].name, path ? path : "");
      else
        sp_error(&c->log, "%-24s FAILED (exit %d)", v[i].name, v[i].task->status);
    }
    json_object_array_add(arr, o);
  }
  if (c->json) {
    json_object *top = json_object_new_object();
    json_object_object_add(top, "ok", json_object_new_boolean(all_ok));
    json_object_object_add(top, "vms", arr);
    puts(json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(top);
  } else {
    json_object_put(arr);
  }
}

int backup_all(const struct cli *c, const char *level, const char *target)
{
  struct sp_err e = { 0 };
  struct sp_config global = { 0 };
  struct hypervisor hv = { 0 };
  virDomainPtr *doms = NULL;
  struct vm_entry *v = NULL;
  struct task *tasks = NULL;
  size_t n = 0, ntasks = 0;
  int nd = 0, rc = SP_EXIT_OK, sigfd = -1;
  char self[PATH_MAX];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0 || cli_load_config(c, NULL, &global, &e) < 0 ||
      hypervisor_open(&hv, c, &global, &e) < 0 ||
      (nd = virConnectListAllDomains(hv.conn, &doms, 0)) < 0) {
    if (sl <= 0)
      sp_err_sys(&e, SP_EXIT_FAILED, errno, "/proc/self/exe");
    else if (nd < 0)
      sp_err_set(&e, SP_EXIT_FAILED, "cannot list the domains: %s", virt_errmsg());
    rc = cli_fail(c, &e);
    goto out;
  }
  self[sl] = '\0';
  v = calloc((size_t)nd + 1, sizeof *v);
  tasks = calloc((size_t)nd + 1, sizeof *tasks);
  if (!v || !tasks) {
    rc = SP_EXIT_FAILED;
    goto out;
  }
  for (int i = 0; i < nd; i++) {
    struct vm_entry *x = &v[n++];
    x->name = strdup(virDomainGetName(doms[i]));
    struct sp_config cfg = { 0 };
    int state = 0, reason;
    sp_err_clear(&e);
    if (cli_load_config(c, x->name, &cfg, &e) < 0)
      x->skipped = "its policy does not load (run stillpoint config show on it)";
    else if (!sp_config_bool(&cfg, SP_KEY_ENABLED))
      x->skipped = "disabled by policy (enabled = no)";
    else if (virDomainGetState(doms[i], &state, &reason, 0) == 0 &&
             state == VIR_DOMAIN_SHUTOFF && sp_config_is(&cfg, SP_KEY_OFFLINE, "skip"))
      x->skipped = "shut off, and offline = skip";
    sp_config_free(&cfg);
  }
  qsort(v, n, sizeof *v, by_name);
  for (size_t i = 0; i < n; i++) {
    if (v[i].skipped)
      continue;
    struct task *t = &tasks[ntasks++];
    t->label = v[i].name;
    t->capture_out = true;
    v[i].task = t;
    vm_argv(c, self, v[i].name, level, target, &t->argv);
  }
  sigfd = task_pool_signalfd();
  int signo = 0;
  sp_err_clear(&e);
  bool ok = task_pool_run(tasks, ntasks, sp_config_int(&global, SP_KEY_MAX_PARALLEL_VMS), false, sigfd,
                          &c->log, &signo, &e) == 0;
  report(c, v, n, ok);
  if (!ok) {
    sp_error(&c->log, "backup --all: %s", e.msg);
    rc = SP_EXIT_FAILED;
  }
out:
  if (sigfd >= 0)
    close(sigfd);
  for (size_t i = 0; i < ntasks; i++)
    task_free(&tasks[i]);
  free(tasks);
  for (size_t i = 0; i < n; i++)
    free(v[i].name);
  free(v);
  for (int i = 0; i < nd; i++)
    virDomainFree(doms[i]);
  free(doms);
  hypervisor_close(&hv);
  sp_config_free(&global);
  return rc;
}
