/* The restored domain's XML (agent/restore_xml.c). */
#include "unit.h"

#include "domain_xml.h"
#include "fsutil.h"
#include "restore_xml.h"

static void rewrites_identity_disks_nvram(void **state)
{
  char path[512], *xml = NULL, *out = NULL;
  size_t len;
  struct sp_err e = { 0 };
  snprintf(path, sizeof path, "%s/domains/raw_qcow2.xml", TEST_DATA_DIR);
  assert_int_equal(sp_read_file(path, 1 << 20, &xml, &len, &e), 0);
  const struct restored_disk disks[] = {
    { "vda", "/srv/new/a'b.qcow2", "qcow2" },
    { "vdc", "/srv/new/c.raw", "raw" },
  };
  char uuid[37];
  assert_int_equal(restore_new_uuid(uuid, &e), 0);
  assert_int_equal(uuid[14], '4');
  struct restore_xml_opts o = { .name = "copy<&>", .uuid = uuid, .new_macs = true,
                                .disks = disks, .ndisks = 2,
                                .nvram_path = "/var/lib/libvirt/qemu/nvram/copy_VARS.fd" };
  if (restore_xml(xml, len, &o, &out, &e) < 0)
    fail_msg("%s", e.msg);
  struct sp_domain d;
  assert_int_equal(sp_domain_parse(out, strlen(out), &d, &e), 0);
  assert_string_equal(d.name, "copy<&>");
  assert_string_equal(d.uuid, uuid);
  assert_string_equal(sp_domain_disk(&d, "vda")->source, "/srv/new/a'b.qcow2");
  assert_string_equal(sp_domain_disk(&d, "vdc")->source, "/srv/new/c.raw");
  assert_string_equal(sp_domain_disk(&d, "vdc")->format, "raw");
  assert_string_equal(sp_domain_disk(&d, "vdb")->source, "/var/tmp/mixed/b.qcow2");
  assert_string_equal(d.nvram.path, "/var/lib/libvirt/qemu/nvram/copy_VARS.fd");
  assert_null(strstr(out, "backingStore"));
  sp_domain_free(&d);
  free(out);

  /* A disk the point has but the XML lacks is an error, not a silent skip. */
  const struct restored_disk missing[] = { { "vdz", "/x", "qcow2" } };
  struct restore_xml_opts o2 = { .disks = missing, .ndisks = 1 };
  assert_int_equal(restore_xml(xml, len, &o2, &out, &e), -1);
  assert_non_null(strstr(e.msg, "no disk vdz"));
  assert_int_equal(restore_xml("<network/>", 10, &o2, &out, &e), -1);
  free(xml);
}

static void efi_autoselect_gets_an_nvram_element(void **state)
{
  const char *xml = "<domain type='kvm'><name>a</name><os firmware='efi'><type>hvm</type></os>"
                    "<devices><interface type='network'><mac address='52:54:00:00:00:01'/>"
                    "<source network='default'/></interface></devices></domain>";
  char *out = NULL;
  struct sp_err e = { 0 };
  struct restore_xml_opts o = { .new_macs = true, .nvram_path = "/n/a_VARS.fd" };
  assert_int_equal(restore_xml(xml, strlen(xml), &o, &out, &e), 0);
  assert_non_null(strstr(out, "<nvram>/n/a_VARS.fd</nvram>"));
  assert_null(strstr(out, "52:54:00:00:00:01"));
  free(out);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(rewrites_identity_disks_nvram),
    cmocka_unit_test(efi_autoselect_gets_an_nvram_element),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
