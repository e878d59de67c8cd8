/* qemu.conf: the owners of TPM and NVRAM state (qemu_conf.c). */
#include "unit.h"

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
  sp_qemu_conf_free(&qc);
  assert_int_equal(sp_qemu_conf_parse("default_tls_x509_cert_dir = \"/etc/pki/all\"\n"
                                      "backup_tls_x509_cert_dir = \"/etc/pki/backup\"\n",
                                      &qc, &e), 0);
  assert_string_equal(qc.backup_tls_dir, "/etc/pki/backup");
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
    cmocka_unit_test(unreadable_falls_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
