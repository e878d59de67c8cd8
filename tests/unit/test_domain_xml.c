/* The domain XML model on real-shaped domains from tests/data/domains,
 * and on bad input (domain_xml.c). */
#include "unit.h"

#include "domain_xml.h"
#include "fsutil.h"
#include "state_locator.h"

static void parse_file(const char *name, struct sp_domain *d)
{
  char path[512];
  snprintf(path, sizeof path, "%s/domains/%s", TEST_DATA_DIR, name);
  char *buf = NULL;
  size_t len = 0;
  struct sp_err e = { 0 };
  assert_int_equal(sp_read_file(path, 1 << 20, &buf, &len, &e), 0);
  if (sp_domain_parse(buf, len, d, &e) < 0)
    fail_msg("%s: %s", name, e.msg);
  free(buf);
}

static void win11(void **state)
{
  struct sp_domain d;
  parse_file("win11.xml", &d);
  assert_string_equal(d.name, "win11");
  assert_string_equal(d.uuid, "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10");
  assert_true(d.running);
  assert_true(d.firmware_efi);
  assert_int_equal(d.ndisks, 2);
  assert_string_equal(d.disks[0].target, "sda");
  assert_string_equal(d.disks[0].bus, "sata");
  assert_string_equal(d.disks[0].format, "qcow2");
  assert_string_equal(d.disks[0].source, "/var/lib/libvirt/images/win11.qcow2");
  assert_null(sp_disk_skip_reason(&d.disks[0]));
  assert_true(sp_disk_can_bitmap(&d.disks[0]));
  assert_true(d.disks[1].removable);
  assert_string_equal(sp_disk_skip_reason(&d.disks[1]), "cdrom");
  assert_int_equal(d.nvram.type, SP_NVRAM_FILE);
  assert_string_equal(d.nvram.path, "/var/lib/libvirt/qemu/nvram/win11_VARS.fd");
  assert_string_equal(d.nvram.template_path, "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
  assert_true(d.loader.present && d.loader.secure && d.loader.readonly && !d.loader.stateless);
  assert_string_equal(d.loader.path, "/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
  assert_int_equal(d.tpm.backend, SP_TPM_EMULATOR);
  assert_string_equal(d.tpm.model, "tpm-crb");
  assert_string_equal(d.tpm.version, "2.0");
  assert_null(d.tpm.secret_uuid);
  assert_true(d.agent_configured && d.agent_connected);
  sp_domain_free(&d);
}

static void tpm12(void **state)
{
  struct sp_domain d;
  parse_file("tpm12_tis.xml", &d);
  assert_false(d.running);
  assert_int_equal(d.tpm.backend, SP_TPM_EMULATOR);
  assert_string_equal(d.tpm.model, "tpm-tis");
  assert_string_equal(d.tpm.version, "1.2");
  assert_string_equal(sp_tpm_subdir(d.tpm.version), "tpm1.2");
  assert_int_equal(d.nvram.type, SP_NVRAM_FILE);
  assert_string_equal(d.nvram.path, "/var/lib/libvirt/qemu/nvram/legacy-tpm12_VARS.fd");
  assert_null(d.nvram.template_path);
  assert_false(d.agent_configured);
  sp_domain_free(&d);
}

static void passthrough(void **state)
{
  struct sp_domain d;
  parse_file("tpm_passthrough.xml", &d);
  assert_int_equal(d.tpm.backend, SP_TPM_PASSTHROUGH);
  assert_string_equal(d.tpm.device_path, "/dev/tpm0");
  assert_null(d.tpm.version);
  assert_string_equal(d.disks[0].type, "block");
  assert_string_equal(d.disks[0].source, "/dev/vg0/hosttpm-root");
  assert_false(sp_disk_can_bitmap(&d.disks[0]));
  assert_int_equal(d.nvram.type, SP_NVRAM_NONE);
  sp_domain_free(&d);
}

static void encrypted(void **state)
{
  struct sp_domain d;
  parse_file("tpm_encrypted.xml", &d);
  assert_string_equal(d.tpm.secret_uuid, "9b3a1c2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d");
  assert_true(d.firmware_efi);
  /* Inactive XML of firmware='efi': libvirt 9.0 gives no nvram path. */
  assert_int_equal(d.nvram.type, SP_NVRAM_NONE);
  assert_false(d.loader.present);
  sp_domain_free(&d);
}

static void nvram_block(void **state)
{
  struct sp_domain d;
  parse_file("nvram_block.xml", &d);
  assert_int_equal(d.nvram.type, SP_NVRAM_BLOCK);
  assert_string_equal(d.nvram.path, "/dev/vg0/blocknv-nvram");
  assert_string_equal(d.nvram.template_path, "/usr/share/OVMF/OVMF_VARS_4M.fd");
  assert_int_equal(d.tpm.backend, SP_TPM_NONE);
  sp_domain_free(&d);
}

static void stateless(void **state)
{
  struct sp_domain d;
  parse_file("stateless.xml", &d);
  assert_true(d.loader.present && d.loader.stateless);
  assert_string_equal(d.loader.type, "rom");
  assert_int_equal(d.nvram.type, SP_NVRAM_NONE);
  sp_domain_free(&d);
}

static void raw_qcow2(void **state)
{
  struct sp_domain d;
  parse_file("raw_qcow2.xml", &d);
  assert_int_equal(d.ndisks, 3);
  assert_true(sp_disk_can_bitmap(sp_domain_disk(&d, "vda")));
  assert_true(sp_disk_can_bitmap(sp_domain_disk(&d, "vdb")));
  assert_false(sp_disk_can_bitmap(sp_domain_disk(&d, "vdc")));
  assert_null(sp_disk_skip_reason(sp_domain_disk(&d, "vdc")));
  assert_null(sp_domain_disk(&d, "vdz"));
  sp_domain_free(&d);
}

static void cdrom_floppy(void **state)
{
  struct sp_domain d;
  parse_file("cdrom_floppy.xml", &d);
  assert_int_equal(d.ndisks, 3);
  assert_null(sp_disk_skip_reason(&d.disks[0]));
  assert_string_equal(sp_disk_skip_reason(&d.disks[1]), "cdrom");
  assert_null(d.disks[1].source); /* empty drive */
  assert_string_equal(sp_disk_skip_reason(&d.disks[2]), "floppy");
  sp_domain_free(&d);
}

static void backup_no(void **state)
{
  struct sp_domain d;
  parse_file("backup_no.xml", &d);
  assert_int_equal(d.ndisks, 4);
  assert_null(sp_disk_skip_reason(&d.disks[0]));
  assert_true(d.disks[1].backup_no);
  assert_string_equal(sp_disk_skip_reason(&d.disks[1]), "backup='no'");
  assert_true(d.disks[2].shareable);
  assert_non_null(strstr(sp_disk_skip_reason(&d.disks[2]), "shareable"));
  assert_string_equal(d.disks[3].type, "network");
  assert_null(d.disks[3].source);
  assert_null(sp_disk_skip_reason(&d.disks[3])); /* exported like any disk */
  assert_true(d.agent_configured);
  assert_false(d.agent_connected);
  sp_domain_free(&d);
}

static void nvram_network(void **state)
{
  struct sp_domain d;
  parse_file("nvram_network.xml", &d);
  assert_int_equal(d.nvram.type, SP_NVRAM_NETWORK);
  assert_null(d.nvram.path);
  sp_domain_free(&d);
}

static void newstyle_sources(void **state)
{
  struct sp_domain d;
  parse_file("tpm_source_nvram_file.xml", &d);
  assert_int_equal(d.nvram.type, SP_NVRAM_FILE);
  assert_string_equal(d.nvram.path, "/srv/nvram/newstyle_VARS.qcow2");
  assert_string_equal(d.nvram.format, "qcow2");
  assert_string_equal(d.tpm.source_path, "/srv/tpm/newstyle");
  assert_true(d.tpm.persistent_state);
  sp_domain_free(&d);
}

static void expect_bad(const char *xml, const char *want)
{
  struct sp_domain d;
  struct sp_err e = { 0 };
  assert_int_equal(sp_domain_parse(xml, strlen(xml), &d, &e), -1);
  if (!strstr(e.msg, want))
    fail_msg("'%s' lacks '%s'", e.msg, want);
  sp_domain_free(&d);
}

static void bad_input(void **state)
{
  expect_bad("", "not well-formed");
  expect_bad("not xml at all", "not well-formed");
  expect_bad("<domain><name>x</name>", "not well-formed");
  expect_bad("<network><name>x</name></network>", "root element");
  expect_bad("<domain><uuid>u</uuid></domain>", "no <name>");
  expect_bad("<domain><name>x</name><devices><disk><source file='/a'/></disk></devices>"
             "</domain>", "no <target");
  expect_bad("<domain><name>x</name><os><nvram type='weird'/></os></domain>",
             "unknown <nvram type='weird'>");
  /* No entity is declared, so none is fetched or expanded: libvirt never
   * writes a DOCTYPE, and one is refused. */
  expect_bad("<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY x SYSTEM "
             "'file:///etc/passwd'>]><domain><name>&x;</name></domain>", "DOCTYPE");
  expect_bad("<!DOCTYPE domain><domain><name>x</name></domain>", "DOCTYPE");
  expect_bad("<domain><name>&x;</name></domain>", "not well-formed");
}

static void parse_str(const char *xml, struct sp_domain *d)
{
  struct sp_err e = { 0 };
  if (sp_domain_parse(xml, strlen(xml), d, &e) < 0)
    fail_msg("%s", e.msg);
}

/* What the reader keeps of a path: the first value in document order, as
 * XPath's string() did; empty reads as absent; only names in no namespace. */
static void reading_rules(void **state)
{
  struct sp_domain d;
  parse_str("<domain id='7'>\n <name>\n  two  words \n</name><name>second</name>"
            "<uuid> u-1 </uuid>"
            "<metadata><x:disk xmlns:x='urn:x'><target dev='no'/></x:disk>"
            "<name>not this</name></metadata>"
            "<os firmware='efi'><nvram template=''>  /nv/ram<!-- c -->  </nvram>"
            "<loader readonly='yes' type='pflash'>/code.fd</loader></os>"
            "<devices>"
            "<disk type='file'><driver type=''/><driver type='raw'/>"
            "<source file='/a.qcow2'/><source file='/b'/><target dev='vda' bus='virtio'/>"
            "<target dev='vdz'/></disk>"
            "<disk xmlns='urn:other' type='file'><target dev='vdq'/></disk>"
            "<tpm model='tpm-crb'><backend type='emulator' version='1.2'>"
            "<encryption secret='s-1'/></backend></tpm>"
            "<tpm model='tpm-tis'><backend type='passthrough'/></tpm>"
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' "
            "state='disconnected'/></channel>"
            "</devices>"
            "<seclabel type='none' model='selinux'/><seclabel type='dynamic' model='apparmor'/>"
            "</domain>", &d);
  assert_string_equal(d.name, "two words");
  assert_string_equal(d.uuid, "u-1");
  assert_true(d.running && d.firmware_efi);
  assert_int_equal(d.ndisks, 1); /* the disk in another namespace is not libvirt's */
  assert_string_equal(d.disks[0].target, "vda");
  assert_string_equal(d.disks[0].bus, "virtio");
  assert_string_equal(d.disks[0].source, "/a.qcow2");
  assert_null(d.disks[0].format); /* the first <driver type> is empty */
  assert_string_equal(d.disks[0].device, "disk");
  assert_int_equal(d.nvram.type, SP_NVRAM_FILE);
  assert_string_equal(d.nvram.path, "/nv/ram");
  assert_null(d.nvram.template_path);
  assert_string_equal(d.loader.path, "/code.fd");
  assert_string_equal(d.loader.type, "pflash");
  assert_true(d.loader.readonly && !d.loader.secure);
  assert_int_equal(d.tpm.backend, SP_TPM_EMULATOR); /* the first <tpm> only */
  assert_string_equal(d.tpm.model, "tpm-crb");
  assert_string_equal(d.tpm.version, "1.2");
  assert_string_equal(d.tpm.secret_uuid, "s-1");
  assert_true(d.agent_configured && !d.agent_connected);
  assert_true(d.confined_apparmor && !d.confined_selinux);
  sp_domain_free(&d);

  /* An inactive domain (id -1 or none); <source file> over the text. */
  parse_str("<domain id='-1'><name>n</name><os><nvram><source file='/s'/>/t</nvram></os>"
            "<devices><tpm><backend/></tpm></devices></domain>", &d);
  assert_false(d.running);
  assert_null(d.uuid);
  assert_string_equal(d.nvram.path, "/s");
  assert_int_equal(d.tpm.backend, SP_TPM_NONE); /* a backend without a type */
  assert_null(d.tpm.version);
  assert_false(d.loader.present);
  sp_domain_free(&d);

  /* Block NVRAM names its device; the root's namespace makes it another
   * element than libvirt's <domain>. */
  parse_str("<domain><name>n</name><os><nvram type='block'><source dev='/dev/x'/></nvram>"
            "</os></domain>", &d);
  assert_int_equal(d.nvram.type, SP_NVRAM_BLOCK);
  assert_string_equal(d.nvram.path, "/dev/x");
  sp_domain_free(&d);
  expect_bad("<domain xmlns='urn:x'><name>n</name></domain>", "root element");
  expect_bad("<domain><name>  </name></domain>", "no <name>");
}

static void fuzz_mutations(void **state)
{
  /* Byte flips and truncations of a real domain must never crash or
   * leak: each either parses or fails with a message. */
  char path[512];
  snprintf(path, sizeof path, "%s/domains/win11.xml", TEST_DATA_DIR);
  char *orig = NULL;
  size_t len = 0;
  struct sp_err e = { 0 };
  assert_int_equal(sp_read_file(path, 1 << 20, &orig, &len, &e), 0);
  char *buf = malloc(len);
  uint32_t x = 1;
  for (int round = 0; round < 2000; round++) {
    memcpy(buf, orig, len);
    size_t n = len;
    for (int k = 0; k < 1 + round % 8; k++) {
      x = x * 1664525 + 1013904223;
      buf[(x >> 8) % len] = (char)(x >> 24);
    }
    if (round % 5 == 0)
      n = (x >> 4) % len;
    struct sp_domain d;
    sp_err_clear(&e);
    if (sp_domain_parse(buf, n, &d, &e) < 0)
      assert_true(e.msg[0] != '\0');
    sp_domain_free(&d);
  }
  free(buf);
  free(orig);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(win11),         cmocka_unit_test(tpm12),
    cmocka_unit_test(passthrough),   cmocka_unit_test(encrypted),
    cmocka_unit_test(nvram_block),   cmocka_unit_test(stateless),
    cmocka_unit_test(raw_qcow2),     cmocka_unit_test(cdrom_floppy),
    cmocka_unit_test(backup_no),     cmocka_unit_test(nvram_network),
    cmocka_unit_test(newstyle_sources), cmocka_unit_test(bad_input),
    cmocka_unit_test(reading_rules),
    cmocka_unit_test(fuzz_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
