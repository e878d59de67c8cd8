/* The mount state (mount_state.c): what umount will unmount, detach and
 * signal comes from this file, so it round-trips exactly and anything
 * that is not of its form - a target outside the directory, a device that
 * is not a loop device, a pid of 1, ".." - is refused, never acted on. */
#include "unit.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "mount_state.h"

static void sample(struct mount_state *s)
{
  struct sp_err e = { 0 };
  memset(s, 0, sizeof *s);
  s->format = SP_MOUNT_STATE_FORMAT;
  s->dir = strdup("/srv/restore/win 11");
  s->point = strdup("/srv/points/win11/20261126T070000Z-full");
  s->disk = strdup("vda");
  s->qemu_nbd = (struct proc_ref){ .pid = 4242, .start = 123456789012ULL };
  s->nbdfuse = (struct proc_ref){ .pid = 4243, .start = 5 };
  assert_int_equal(mount_state_add_loop(s, "/dev/loop7", 0, 0, &e), 0);
  assert_int_equal(mount_state_add_loop(s, "/dev/loop12", 1048576, 20971520, &e), 0);
  struct mount_entry m = { .source = "/dev/loop12", .target = "/srv/restore/win 11/1",
                           .type = "ext4", .partition = 1, .created = true, .no_replay = true };
  assert_int_equal(mount_state_add_mount(s, &m, &e), 0);
}

static char *text_of(const struct mount_state *s)
{
  char *out = NULL;
  struct sp_err e = { 0 };
  assert_int_equal(mount_state_to_json(s, &out, &e), 0);
  return out;
}

static void round_trip(void **state)
{
  struct mount_state s, t;
  sample(&s);
  char *text = text_of(&s);
  struct sp_err e = { 0 };
  if (mount_state_parse(text, strlen(text), &t, &e) < 0)
    fail_msg("%s", e.msg);
  assert_string_equal(t.dir, s.dir);
  assert_string_equal(t.point, s.point);
  assert_int_equal(t.qemu_nbd.pid, 4242);
  assert_true(t.qemu_nbd.start == 123456789012ULL);
  assert_int_equal(t.nloops, 2);
  assert_string_equal(t.loops[1].dev, "/dev/loop12");
  assert_int_equal(t.loops[1].offset, 1048576);
  assert_int_equal(t.nmounts, 1);
  assert_string_equal(t.mounts[0].target, "/srv/restore/win 11/1");
  assert_true(t.mounts[0].created && t.mounts[0].no_replay);
  assert_int_equal(t.mounts[0].partition, 1);
  free(text);
  mount_state_free(&t);
  mount_state_free(&s);
}

/* Replaces the first occurrence of from in the sample's JSON and parses. */
static int parse_with(const char *from, const char *to, struct sp_err *e)
{
  struct mount_state s, t;
  sample(&s);
  char *text = text_of(&s);
  mount_state_free(&s);
  char *at = strstr(text, from);
  assert_non_null(at);
  char *changed = NULL;
  assert_true(asprintf(&changed, "%.*s%s%s", (int)(at - text), text, to,
                       at + strlen(from)) > 0);
  int rc = mount_state_parse(changed, strlen(changed), &t, e);
  if (rc == 0)
    mount_state_free(&t);
  free(changed);
  free(text);
  return rc;
}

static void refuses_what_it_would_act_on(void **state)
{
  struct sp_err e = { 0 };
  assert_int_equal(parse_with("\"/dev/loop12\",\n      \"offset\"", "\"/dev/sda\",\n      \"offset\"", &e), -1);
  assert_non_null(strstr(e.msg, "not a loop device"));
  assert_int_equal(parse_with("\"/dev/loop7\"", "\"/dev/loop7x\"", &e), -1);
  assert_int_equal(parse_with("\"/srv/restore/win 11/1\"", "\"/etc\"", &e), -1);
  assert_int_equal(parse_with("\"/srv/restore/win 11/1\"", "\"/srv/restore/win 11/../x\"", &e), -1);
  assert_int_equal(parse_with("\"/srv/restore/win 11/1\"", "\"/srv/restore/win 111\"", &e), -1);
  assert_int_equal(parse_with("\"pid\":4242", "\"pid\":1", &e), -1);
  assert_int_equal(parse_with("\"pid\":4242", "\"pid\":-5", &e), -1);
  assert_int_equal(parse_with("\"pid\":4242", "\"pid\":\"4242\"", &e), -1);
  assert_int_equal(parse_with("\"format\":1", "\"format\":2", &e), -1);
  assert_non_null(strstr(e.msg, "format 2"));
  assert_int_equal(parse_with("\"disk\":\"vda\"", "\"disk\":\"../vda\"", &e), -1);
  assert_int_equal(parse_with("\"dir\":\"/srv/restore/win 11\"", "\"dir\":\"srv\"", &e), -1);
  assert_int_equal(parse_with("\"created\":true", "\"created\":1", &e), -1);
  assert_int_equal(parse_with("\"loops\":[", "\"loops\":{", &e), -1);
  /* The whole directory as a target (an unpartitioned disk) is fine, and
   * so is a state of processes not started yet. */
  assert_int_equal(parse_with("\"/srv/restore/win 11/1\"", "\"/srv/restore/win 11\"", &e), 0);
  assert_int_equal(parse_with("\"nbdfuse\":{", "\"nbdfuse\":null,\"x\":{", &e), 0);
  /* A Ceph point's name is a point too; anything else after rbd: is not. */
  const char *pt = "\"/srv/points/win11/20261126T070000Z-full\"";
  assert_int_equal(parse_with(pt, "\"rbd:vms/site-a/4d1f0c52-6a53-4c2e-9a63-1f0e2b9b7c11@"
                              "20261126T070000Z-full\"", &e), 0);
  assert_int_equal(parse_with(pt, "\"rbd:\"", &e), -1);
  assert_int_equal(parse_with(pt, "\"rbd:vms/a b\"", &e), -1);
  assert_int_equal(parse_with(pt, "\"rbd:vms/a\\nb\"", &e), -1);
  assert_int_equal(parse_with(pt, "\"srv/points\"", &e), -1);
  const char junk[] = "{\"format\":1} trailing";
  struct mount_state t;
  assert_int_equal(mount_state_parse(junk, sizeof junk - 1, &t, &e), -1);
  assert_int_equal(mount_state_parse("[]", 2, &t, &e), -1);
}

static void saved_and_loaded(void **state)
{
  char *dir = unit_tmpdir();
  struct mount_state s, t;
  struct sp_err e = { 0 };
  sample(&s);
  assert_int_equal(mount_state_save(&s, dir, &e), 0);
  char *path = sp_path_join(dir, "state.json");
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(mount_state_load(dir, &t, &e), 0);
  assert_string_equal(t.disk, "vda");
  mount_state_free(&t);
  unlink(path);
  assert_int_equal(mount_state_load(dir, &t, &e), -1);
  assert_int_equal(errno, ENOENT);
  char run[PATH_MAX];
  assert_int_equal(mount_run_dir("/srv/restore/win 11", run, &e), 0);
  assert_int_equal(strncmp(run, SP_MOUNT_RUN_ROOT "/", strlen(SP_MOUNT_RUN_ROOT) + 1), 0);
  assert_int_equal(strlen(run), strlen(SP_MOUNT_RUN_ROOT) + 17);
  free(path);
  mount_state_free(&s);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(round_trip),
    cmocka_unit_test(refuses_what_it_would_act_on),
    cmocka_unit_test(saved_and_loaded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
