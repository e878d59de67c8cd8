/* The restored domain's XML (agent/restore_xml.c) and the allow-list it
 * goes through (agent/domain_filter.c): a point's domain.xml is untrusted,
 * and each element that would reach the host is refused by name. */
#include "unit.h"

#include <libxml/parser.h>

#include "domain_filter.h"
#include "domain_xml.h"
#include "fsutil.h"
#include "restore_xml.h"

static const char *const emulators[] = { "/usr/bin/qemu-system-x86_64" };

static char *data(const char *name, size_t *len)
{
  char path[512], *xml = NULL;
  struct sp_err e = { 0 };
  snprintf(path, sizeof path, "%s/domains/%s", TEST_DATA_DIR, name);
  assert_int_equal(sp_read_file(path, 1 << 20, &xml, len, &e), 0);
  return xml;
}

static void rewrites_identity_disks_nvram(void **state)
{
  size_t len;
  char *xml = data("raw_qcow2.xml", &len), *out = NULL;
  struct sp_err e = { 0 };
  const struct restored_disk disks[] = {
    { "vda", "/srv/new/a'b.qcow2", "qcow2" },
    { "vdc", "/srv/new/c.raw", "raw" },
  };
  char uuid[37];
  assert_int_equal(restore_new_uuid(uuid, &e), 0);
  assert_int_equal(uuid[14], '4');
  struct restore_xml_opts o = { .name = "copy<&>", .uuid = uuid, .new_macs = true,
                                .disks = disks, .ndisks = 2,
                                .nvram_path = "/var/lib/libvirt/qemu/nvram/copy_VARS.fd",
                                .other_disks = RESTORE_OTHER_KEEP };
  if (restore_xml(xml, len, &o, &out, NULL, &e) < 0)
    fail_msg("%s", e.msg);
  struct sp_domain d;
  assert_int_equal(sp_domain_parse(out, strlen(out), &d, &e), 0);
  assert_string_equal(d.name, "copy<&>");
  assert_string_equal(d.uuid, uuid);
  assert_string_equal(sp_domain_disk(&d, "vda")->source, "/srv/new/a'b.qcow2");
  assert_string_equal(sp_domain_disk(&d, "vdc")->source, "/srv/new/c.raw");
  assert_string_equal(sp_domain_disk(&d, "vdc")->format, "raw");
  /* kept as the point says, because the administrator said keep */
  assert_string_equal(sp_domain_disk(&d, "vdb")->source, "/var/tmp/mixed/b.qcow2");
  assert_string_equal(d.nvram.path, "/var/lib/libvirt/qemu/nvram/copy_VARS.fd");
  assert_null(strstr(out, "backingStore"));
  sp_domain_free(&d);
  free(out);

  /* A disk the point does not hold is refused by default, dropped on
   * request. */
  o.other_disks = RESTORE_OTHER_REFUSE;
  assert_int_equal(restore_xml(xml, len, &o, &out, NULL, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_non_null(strstr(e.msg, "vdb (disk, file)"));
  assert_non_null(strstr(e.msg, "--other-disks keep"));
  o.other_disks = RESTORE_OTHER_DROP;
  assert_int_equal(restore_xml(xml, len, &o, &out, NULL, &e), 0);
  assert_null(strstr(out, "mixed/b.qcow2"));
  free(out);

  /* A disk the point has but the XML lacks is an error, not a silent skip. */
  const struct restored_disk missing[] = { { "vdz", "/x", "qcow2" } };
  struct restore_xml_opts o2 = { .disks = missing, .ndisks = 1 };
  assert_int_equal(restore_xml(xml, len, &o2, &out, NULL, &e), -1);
  assert_non_null(strstr(e.msg, "no disk vdz"));
  assert_int_equal(restore_xml("<network/>", 10, &o2, &out, NULL, &e), -1);
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
  if (restore_xml(xml, strlen(xml), &o, &out, NULL, &e) < 0)
    fail_msg("%s", e.msg);
  assert_non_null(strstr(out, "<nvram>/n/a_VARS.fd</nvram>"));
  assert_null(strstr(out, "52:54:00:00:00:01"));
  free(out);
}

/* What libvirt 9.0 writes for the tests' VMs passes the filter untouched
 * (restored disks and NVRAM in, an agent channel of libvirt's, an rng). */
static void libvirt_domain_passes(void **state)
{
  size_t len;
  char *xml = data("libvirt_inactive.xml", &len), *out = NULL;
  struct sp_err e = { 0 };
  const struct restored_disk disks[] = { { "vda", "/srv/r/vda.qcow2", "qcow2" },
                                         { "vdb", "/srv/r/vdb.qcow2", "qcow2" } };
  struct restore_xml_opts o = { .name = "r", .disks = disks, .ndisks = 2,
                                .nvram_path = "/var/lib/libvirt/qemu/nvram/r_VARS.fd",
                                .tpm_dir = "/var/lib/libvirt/swtpm/u/tpm2",
                                .emulators = emulators, .nemulators = 1 };
  if (restore_xml(xml, len, &o, &out, NULL, &e) < 0)
    fail_msg("%s", e.msg);
  assert_non_null(strstr(out, "/var/lib/libvirt/qemu/channel/target/domain-3-vm/"));
  assert_non_null(strstr(out, "<emulator>/usr/bin/qemu-system-x86_64</emulator>"));
  free(out);
  /* another emulator than libvirt's is not */
  struct restore_xml_opts none = o;
  none.nemulators = 0;
  assert_int_equal(restore_xml(xml, len, &none, &out, NULL, &e), -1);
  assert_non_null(strstr(e.msg, "/domain/devices/emulator"));
  free(xml);
}

/* A base domain with one element put in: refused, naming where and why. */
static void expect_refused(const char *top, const char *devices, const char *want_where,
                           const char *want_what)
{
  char *xml = NULL, *out = NULL;
  assert_true(asprintf(&xml,
                       "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                       "<name>x</name><memory>1</memory><os><type>hvm</type></os>%s"
                       "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
                       "<disk type='file' device='disk'><source file='/old/a.qcow2'/>"
                       "<target dev='vda'/></disk>%s</devices></domain>",
                       top, devices) > 0);
  const struct restored_disk disks[] = { { "vda", "/srv/r/vda.qcow2", "qcow2" } };
  struct restore_xml_opts o = { .disks = disks, .ndisks = 1, .emulators = emulators,
                                .nemulators = 1 };
  struct sp_err e = { 0 };
  if (restore_xml(xml, strlen(xml), &o, &out, NULL, &e) == 0)
    fail_msg("accepted: %s%s\n%s", top, devices, out);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  if (!strstr(e.msg, want_where) || !strstr(e.msg, want_what))
    fail_msg("%s%s: '%s' lacks '%s' / '%s'", top, devices, e.msg, want_where, want_what);
  /* trusted, it is defined as it is; the filtered copy lacks it */
  char *filtered = NULL;
  o.trust = true;
  o.other_disks = RESTORE_OTHER_KEEP; /* as restore does with --trust-domain-xml */
  if (restore_xml(xml, strlen(xml), &o, &out, &filtered, &e) < 0)
    fail_msg("trusted: %s", e.msg);
  assert_non_null(filtered);
  assert_string_not_equal(out, filtered);
  free(out);
  free(filtered);
  free(xml);
}

static void refuses_what_reaches_the_host(void **state)
{
  expect_refused("<qemu:commandline><qemu:arg value='-x'/></qemu:commandline>", "",
                 "/domain/qemu:commandline", "QEMU command-line namespace");
  expect_refused("", "<hostdev mode='subsystem' type='pci'/>", "/domain/devices/hostdev",
                 "a host device");
  expect_refused("", "<filesystem type='mount'><source dir='/'/><target dir='r'/></filesystem>",
                 "/domain/devices/filesystem", "host directory");
  expect_refused("", "<serial type='file'><source path='/etc/cron.d/x'/></serial>",
                 "/domain/devices/serial/source", "/etc/cron.d/x");
  expect_refused("", "<serial type='pty'><log file='/root/.bashrc' append='on'/></serial>",
                 "/domain/devices/serial/log", "/root/.bashrc");
  expect_refused("", "<serial type='file'><source path='/var/log/libvirt/qemu/../../../etc/x'/>"
                 "</serial>", "/domain/devices/serial/source", "../");
  expect_refused("", "<channel type='unix'><source mode='bind' path='/run/x.sock'/></channel>",
                 "/domain/devices/channel/source", "/run/x.sock");
  expect_refused("", "<serial type='dev'><source path='/dev/ttyS0'/></serial>",
                 "/domain/devices/serial/source", "/dev/ttyS0");
  expect_refused("", "<graphics type='vnc' socket='/tmp/vnc.sock'/>", "/domain/devices/graphics",
                 "/tmp/vnc.sock");
  expect_refused("<os><kernel>/etc/shadow</kernel></os>", "", "/domain/os[2]/kernel",
                 "/etc/shadow");
  expect_refused("<os><loader>/etc/shadow</loader></os>", "", "/domain/os[2]/loader",
                 "/etc/shadow");
  expect_refused("<os><nvram template='/etc/shadow'/></os>", "", "/domain/os[2]/nvram",
                 "template");
  expect_refused("", "<emulator>/tmp/evil</emulator>", "/domain/devices/emulator[2]",
                 "/tmp/evil");
  expect_refused("<seclabel type='none'/>", "", "/domain/seclabel", "security label");
  expect_refused("<seclabel type='static' model='dac'><label>+0:+0</label></seclabel>", "",
                 "/domain/seclabel", "security label");
  expect_refused("", "<interface type='ethernet'><script path='/tmp/x'/></interface>",
                 "/domain/devices/interface/script", "host script");
  expect_refused("", "<interface type='hostdev'/>", "/domain/devices/interface",
                 "host device");
  expect_refused("", "<input type='evdev'><source dev='/dev/input/event0'/></input>",
                 "/domain/devices/input", "host device");
  expect_refused("", "<tpm><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
                 "/domain/devices/tpm/backend", "host device");
  expect_refused("", "<rng model='virtio'><backend model='random'>/dev/sda</backend></rng>",
                 "/domain/devices/rng/backend", "/dev/sda");
  expect_refused("", "<memory model='nvdimm'><source><path>/etc/shadow</path></source></memory>",
                 "/domain/devices/memory/source/path", "/etc/shadow");
  expect_refused("", "<shmem name='x'/>", "/domain/devices/shmem", "shared with host");
  expect_refused("", "<lease><lockspace>a</lockspace><key>b</key><target path='/x'/></lease>",
                 "/domain/devices/lease", "lock file");
  expect_refused("", "<smartcard mode='host'/>", "/domain/devices/smartcard", "smartcard");
  expect_refused("<bootloader>/usr/bin/pygrub</bootloader>", "", "/domain/bootloader",
                 "host program");
  expect_refused("<launchy/>", "", "/domain/launchy", "not on stillpoint's list");
  expect_refused("", "<gizmo/>", "/domain/devices/gizmo", "not on stillpoint's list");
  expect_refused("<description xmlns:xi='http://www.w3.org/2001/XInclude'>a</description>"
                 "<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/shadow'/>", "",
                 "include", "namespace http://www.w3.org/2001/XInclude");
}

static void refuses_entities(void **state)
{
  const char *xml = "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY s SYSTEM '/etc/shadow'>]>"
                    "<domain type='kvm'><name>x</name><description>&s;</description>"
                    "<os><type>hvm</type></os><devices/></domain>";
  char *out = NULL;
  struct sp_err e = { 0 };
  struct restore_xml_opts o = { 0 };
  assert_int_equal(restore_xml(xml, strlen(xml), &o, &out, NULL, &e), -1);
  assert_non_null(strstr(e.msg, "document type declaration"));
}

/* A clone's TPM never keeps the original's <source>; the replaced
 * definition's own directory is named when it had one. */
static void tpm_source_rewritten(void **state)
{
  const char *xml = "<domain type='kvm'><name>x</name><os><type>hvm</type></os><devices>"
                    "<tpm model='tpm-crb'><backend type='emulator' version='2.0'>"
                    "<source type='dir' path='/var/lib/original/tpm'/></backend></tpm>"
                    "</devices></domain>";
  char *out = NULL;
  struct sp_err e = { 0 };
  struct restore_xml_opts o = { .tpm_dir = "/var/lib/libvirt/swtpm/new/tpm2" };
  if (restore_xml(xml, strlen(xml), &o, &out, NULL, &e) < 0)
    fail_msg("%s", e.msg);
  assert_null(strstr(out, "<source"));
  free(out);
  o.tpm_dir = "/srv/tpm/mine";
  o.tpm_source = true;
  if (restore_xml(xml, strlen(xml), &o, &out, NULL, &e) < 0)
    fail_msg("%s", e.msg);
  assert_non_null(strstr(out, "<source type=\"dir\" path=\"/srv/tpm/mine\"/>"));
  assert_null(strstr(out, "original"));
  free(out);
}

static void emulators_from_capabilities(void **state)
{
  const char *caps = "<capabilities><host/><guest><arch name='x86_64'>"
                     "<emulator>/usr/bin/qemu-system-x86_64</emulator><domain type='qemu'/>"
                     "<domain type='kvm'><emulator>/usr/bin/kvm</emulator></domain></arch>"
                     "</guest></capabilities>";
  char **v = NULL;
  size_t n = 0;
  struct sp_err e = { 0 };
  assert_int_equal(domain_filter_emulators(caps, strlen(caps), &v, &n, &e), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[0], "/usr/bin/qemu-system-x86_64");
  assert_string_equal(v[1], "/usr/bin/kvm");
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
  assert_int_equal(domain_filter_emulators("<x", 2, &v, &n, &e), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(rewrites_identity_disks_nvram),
    cmocka_unit_test(efi_autoselect_gets_an_nvram_element),
    cmocka_unit_test(libvirt_domain_passes),
    cmocka_unit_test(refuses_what_reaches_the_host),
    cmocka_unit_test(refuses_entities),
    cmocka_unit_test(tpm_source_rewritten),
    cmocka_unit_test(emulators_from_capabilities),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
