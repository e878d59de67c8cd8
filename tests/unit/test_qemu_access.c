/* Who QEMU is and whether it may pass a directory (agent/qemu_access.c),
 * and stillpoint's own directories (common/own_dirs.c). */
#include "unit.h"

#include <sys/stat.h>

#include "own_dirs.h"
#include "qemu_access.h"

/* A real /proc/<pid>/status of a libvirt QEMU on Debian 12 (trimmed). */
static const char status[] =
  "Name:\tqemu-system-x86\nUmask:\t0002\nState:\tS (sleeping)\nTgid:\t4242\n"
  "Uid:\t64055\t64055\t64055\t64055\nGid:\t64055\t64055\t64055\t64055\n"
  "FDSize:\t128\nGroups:\t108 64055 \nNStgid:\t4242\n";

static void status_parsed(void **state)
{
  struct qemu_creds c;
  assert_int_equal(qemu_creds_from_status(status, &c), 0);
  assert_int_equal(c.uid, 64055);
  assert_int_equal(c.gid, 64055);
  assert_int_equal(c.ngroups, 2);
  assert_int_equal(c.groups[0], 108);
  assert_int_equal(c.groups[1], 64055);
}

static void status_fs_ids_count(void **state)
{
  struct qemu_creds c;
  /* real root, file system ids 107: files are opened as 107 */
  assert_int_equal(qemu_creds_from_status("Uid:\t0\t0\t0\t107\nGid:\t0\t0\t0\t108\nGroups:\n",
                                          &c), 0);
  assert_int_equal(c.uid, 107);
  assert_int_equal(c.gid, 108);
  assert_int_equal(c.ngroups, 0);
}

static void status_malformed(void **state)
{
  struct qemu_creds c;
  assert_int_equal(qemu_creds_from_status("", &c), -1);
  assert_int_equal(qemu_creds_from_status("Uid:\t1\t1\nGid:\t1\t1\t1\t1\n", &c), -1);
  assert_int_equal(qemu_creds_from_status("Uid:\t1\t1\t1\t1\n", &c), -1);
  assert_int_equal(qemu_creds_from_status("Uid:\tx\t1\t1\t1\nGid:\t1\t1\t1\t1\n", &c), -1);
  assert_int_equal(qemu_creds_from_status("Uid:\t99999999999\t1\t1\t1\nGid:\t1\t1\t1\t1\n", &c),
                   -1);
}

static void group_membership(void **state)
{
  struct qemu_creds c = { .uid = 64055, .gid = 64055 };
  const char *group = "root:x:0:\nkvm:x:108:libvirt-qemu,other\nlibvirt:x:110:sptest\n"
                      "tss:x:103:\nbroken line\nx:y:z:libvirt-qemu\nswtpm:x:120:other,libvirt-qemu";
  qemu_creds_add_member_groups(group, "libvirt-qemu", &c);
  assert_int_equal(c.ngroups, 2);
  assert_int_equal(c.groups[0], 108);
  assert_int_equal(c.groups[1], 120);
  /* a name that is a prefix of a member is not that member */
  struct qemu_creds d = { 0 };
  qemu_creds_add_member_groups(group, "libvirt", &d);
  assert_int_equal(d.ngroups, 0);
}

static void search_rules(void **state)
{
  struct qemu_creds c = { .uid = 64055, .gid = 64055, .groups = { 108 }, .ngroups = 1 };
  assert_true(qemu_may_search(&c, 0, 0, 0711));
  assert_false(qemu_may_search(&c, 0, 0, 0700));
  assert_false(qemu_may_search(&c, 0, 0, 0750));
  assert_true(qemu_may_search(&c, 0, 108, 0710));   /* a supplementary group */
  assert_true(qemu_may_search(&c, 0, 64055, 0750)); /* its primary group */
  assert_true(qemu_may_search(&c, 64055, 0, 0700)); /* its own */
  /* the owner class decides for the owner, even when other may pass */
  assert_false(qemu_may_search(&c, 64055, 0, 0601));
  /* the group class decides for a member */
  assert_false(qemu_may_search(&c, 0, 108, 0701));
  struct qemu_creds root = { 0 };
  assert_true(qemu_may_search(&root, 1, 1, 0));
}

static void apparmor_include(void **state)
{
  assert_true(qemu_apparmor_rule_included("include <abstractions/stillpoint-qemu>\n"));
  assert_true(qemu_apparmor_rule_included(
    "# site rules\n  /srv/x r,\n#include <abstractions/stillpoint-qemu>\n"));
  assert_true(qemu_apparmor_rule_included("  include if exists <abstractions/stillpoint-qemu>"));
  assert_true(qemu_apparmor_rule_included(
    "include <abstractions/stillpoint-qemu>  # added by the stillpoint package\n"));
  assert_false(qemu_apparmor_rule_included(""));
  assert_false(qemu_apparmor_rule_included("# include <abstractions/stillpoint-qemu>\n"));
  assert_false(qemu_apparmor_rule_included("include <abstractions/stillpoint-qemux>\n"));
  assert_false(qemu_apparmor_rule_included("/run/stillpoint/** rw,\n"));
}

static void own_dirs_table(void **state)
{
  size_t n;
  const struct sp_own_dir *d = sp_own_dirs(&n);
  assert_true(n >= 5);
  /* parents first, and QEMU passes the ones on its way to a job's files */
  assert_string_equal(d[0].path, SP_RUN_DIR);
  assert_int_equal(sp_own_dir_find(SP_RUN_DIR)->mode, 0711);
  assert_int_equal(sp_own_dir_find(SP_LIB_DIR)->mode, 0711);
  assert_int_equal(sp_own_dir_find(SP_SCRATCH_DEFAULT)->mode, 0711);
  assert_int_equal(sp_own_dir_find(SP_LOCK_DIR)->mode, 0700);
  assert_int_equal(sp_own_dir_find(SP_MOUNT_DIR)->mode, 0700);
  assert_int_equal(sp_own_dir_find(SP_STATE_DEFAULT)->mode, 0700);
  assert_null(sp_own_dir_find("/run"));
  assert_null(sp_own_dir_find("/var/lib/stillpoint/"));
  for (size_t i = 1; i < n; i++) {
    const char *slash = strrchr(d[i].path, '/');
    char parent[256];
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - d[i].path), d[i].path);
    bool seen = false;
    for (size_t k = 0; k < i; k++)
      seen |= strcmp(d[k].path, parent) == 0;
    assert_true(seen || strcmp(parent, "/run") == 0 || strcmp(parent, "/var/lib") == 0);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(status_parsed),    cmocka_unit_test(status_fs_ids_count),
    cmocka_unit_test(status_malformed), cmocka_unit_test(group_membership),
    cmocka_unit_test(search_rules),     cmocka_unit_test(apparmor_include),
    cmocka_unit_test(own_dirs_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
