/* qemu.conf: the owners of TPM and NVRAM state (qemu_conf.c). */
#include "unit.h"

#include "host.h"
#include "qemu_conf.h"

static void debian_defaults(void **state)
{
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  assert_int_equal(sp_qemu_conf_parse("#swtpm_user = \"tss\"\n#user = \"x\"\n", &qc, &e), 0);
  assert_string_equal(qc.swtpm_user, "tss");
  assert_string_equal(qc.swtpm_group, "tss");
  assert_string_equal(qc.user, "libvirt-qemu");
  assert_true(qc.from_file);
  sp_qemu_conf_free(&qc);
}

static void ubuntu_swtpm(void **state)
{
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  const char *text = "user = \"qemu\"\n  group=\"kvm\"  # comment\n"
                     "swtpm_user = \"swtpm\"\nswtpm_group = \"swtpm\"\n"
                     "security_driver = [ \"selinux\", \"dac\" ]\nmax_files = 4096\n";
  assert_int_equal(sp_qemu_conf_parse(text, &qc, &e), 0);
  assert_string_equal(qc.user, "qemu");
  assert_string_equal(qc.group, "kvm");
  assert_string_equal(qc.swtpm_user, "swtpm");
  assert_string_equal(qc.swtpm_group, "swtpm");
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/qemu");
  sp_qemu_conf_free(&qc);
}

static void backup_tls_dir(void **state)
{
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  assert_int_equal(sp_qemu_conf_parse("default_tls_x509_cert_dir = \"/etc/pki/all\"\n", &qc, &e),
                   0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/all");
  assert_false(qc.backup_tls_dir_set);
  sp_qemu_conf_free(&qc);
  assert_int_equal(sp_qemu_conf_parse("default_tls_x509_cert_dir = \"/etc/pki/all\"\n"
                                      "backup_tls_x509_cert_dir = \"/etc/pki/backup\"\n",
                                      &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/backup");
  assert_true(qc.backup_tls_dir_set);
  sp_qemu_conf_free(&qc);
}

/* A host whose qemu.conf is `text` (NULL: unreadable) and on which only
 * the paths in `dirs` exist. */
struct fake {
  const char *text;
  const char *const *dirs;
};

static int fake_read_text(struct sp_host *h, const char *path, size_t max, char **buf,
                          size_t *len, struct sp_err *e)
{
  (void)path, (void)max;
  const struct fake *f = h->impl;
  if (!f->text)
    return sp_err_set(e, SP_EXIT_FAILED, "Permission denied");
  *buf = strdup(f->text);
  *len = strlen(f->text);
  return 0;
}

static bool fake_exists(struct sp_host *h, const char *path)
{
  const struct fake *f = h->impl;
  for (const char *const *d = f->dirs; *d; d++)
    if (strcmp(*d, path) == 0)
      return true;
  return false;
}

static void libvirt_backup_dir(void **state)
{
  (void)state;
  static const struct sp_host_ops ops = { .read_text = fake_read_text, .exists = fake_exists };
  static const char *const with[] = { "/etc/pki/libvirt-backup", NULL };
  static const char *const without[] = { NULL };
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  /* libvirt takes the service's own directory when it exists... */
  struct fake f = { "default_tls_x509_cert_dir = \"/etc/pki/all\"\n", with };
  struct sp_host h = { .ops = &ops, .impl = &f };
  assert_int_equal(sp_host_qemu_conf_read(&h, "/etc/libvirt/qemu.conf", &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/libvirt-backup");
  sp_qemu_conf_free(&qc);
  /* ...also when qemu.conf cannot be read... */
  f.text = NULL;
  assert_int_equal(sp_host_qemu_conf_read(&h, "/etc/libvirt/qemu.conf", &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/libvirt-backup");
  sp_qemu_conf_free(&qc);
  /* ...but never over the key itself, nor when it is absent. */
  f.text = "backup_tls_x509_cert_dir = \"/srv/tls\"\n";
  assert_int_equal(sp_host_qemu_conf_read(&h, "/etc/libvirt/qemu.conf", &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/srv/tls");
  sp_qemu_conf_free(&qc);
  f.dirs = without;
  f.text = "";
  assert_int_equal(sp_host_qemu_conf_read(&h, "/etc/libvirt/qemu.conf", &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/qemu");
  sp_qemu_conf_free(&qc);
}

static void garbage(void **state)
{
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  const char *text = "= \"x\"\nswtpm_user = \"unterminated\nswtpm_user\n\x01\x02\xff\n"
                     "user = +0\n";
  assert_int_equal(sp_qemu_conf_parse(text, &qc, &e), 0);
  assert_string_equal(qc.swtpm_user, "tss");
  assert_string_equal(qc.user, "+0");
  sp_qemu_conf_free(&qc);
}

static void unreadable_falls_back(void **state)
{
  struct sp_qemu_conf qc;
  struct sp_err e = { 0 };
  assert_int_equal(sp_qemu_conf_read("/nonexistent/qemu.conf", &qc, &e), 0);
  assert_false(qc.from_file);
  assert_string_equal(qc.swtpm_user, "tss");
  sp_qemu_conf_free(&qc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(debian_defaults),
    cmocka_unit_test(ubuntu_swtpm),
    cmocka_unit_test(garbage),
    cmocka_unit_test(backup_tls_dir),
    cmocka_unit_test(libvirt_backup_dir),
    cmocka_unit_test(unreadable_falls_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
