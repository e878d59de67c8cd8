/* Where a restored VM's things go (agent/restore_plan.c): never where the
 * point says, unless asked, and then only somewhere sane. */
#include "unit.h"

#include "domain_xml.h"
#include "fsutil.h"
#include "manifest.h"
#include "restore_plan.h"

static void manifest(struct sp_manifest *m, const char *source)
{
  char path[512], *text = NULL;
  size_t len;
  struct sp_err e = { 0 };
  snprintf(path, sizeof path, "%s/manifests/inc.json", TEST_DATA_DIR);
  assert_int_equal(sp_read_file(path, 1 << 20, &text, &len, &e), 0);
  assert_int_equal(sp_manifest_parse(text, len, m, &e), 0);
  free(text);
  free(m->disks[0].source);
  m->disks[0].source = source ? strdup(source) : NULL;
}

static void domain(struct sp_domain *d, const char *source, const char *tpm_source,
                   const char *uuid)
{
  char *xml = NULL;
  struct sp_err e = { 0 };
  assert_true(asprintf(&xml, "<domain><name>w</name><uuid>%s</uuid><os><type>hvm</type>"
                       "<nvram>/srv/nv/w_VARS.fd</nvram></os><devices>"
                       "<disk type='file' device='disk'><source file='%s'/><target dev='sda'/>"
                       "</disk><tpm><backend type='emulator' version='2.0'>%s%s%s</backend>"
                       "</tpm></devices></domain>", uuid, source,
                       tpm_source ? "<source type='dir' path='" : "", tpm_source ? tpm_source : "",
                       tpm_source ? "'/>" : "") > 0);
  assert_int_equal(sp_domain_parse(xml, strlen(xml), d, &e), 0);
  free(xml);
}

static void never_from_the_point(void **state)
{
  struct sp_manifest m;
  struct sp_domain pd;
  struct restore_plan p;
  struct sp_err e = { 0 };
  const char *uuid = "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10";
  manifest(&m, "/etc/cron.d/evil");
  domain(&pd, "/etc/cron.d/evil", NULL, uuid);
  struct restore_plan_in in = { .m = &m, .point_dom = &pd, .name = "w", .uuid = uuid };
  /* no option: refused, the recorded path named */
  assert_int_equal(restore_plan_make(&in, &p, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_non_null(strstr(e.msg, "at /etc/cron.d/evil"));
  assert_non_null(strstr(e.msg, "--disks-to DIR"));
  restore_plan_free(&p);
  /* asked for: a system directory is still refused */
  in.recorded = true;
  assert_int_equal(restore_plan_make(&in, &p, &e), -1);
  assert_non_null(strstr(e.msg, "in a system directory"));
  restore_plan_free(&p);
  /* --disks-to: the name is the target's, not the point's */
  in.recorded = false;
  in.disks_to = "/srv/restored";
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.disks[0].dir, "/srv/restored");
  assert_string_equal(p.disks[0].file, "sda.qcow2");
  assert_string_equal(p.disks[0].recorded, "/etc/cron.d/evil");
  /* NVRAM and TPM in libvirt's own directories, whatever the manifest says */
  assert_string_equal(p.nvram_dir, "/var/lib/libvirt/qemu/nvram");
  assert_string_equal(p.nvram_file, "w_VARS.fd");
  assert_string_equal(p.tpm_dir,
                      "/var/lib/libvirt/swtpm/2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10/tpm2");
  assert_false(p.tpm_source);
  restore_plan_free(&p);
  sp_domain_free(&pd);
  sp_manifest_free(&m);
}

static void recorded_paths_when_asked(void **state)
{
  struct sp_manifest m;
  struct sp_domain pd;
  struct restore_plan p;
  struct sp_err e = { 0 };
  const char *uuid = "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10";
  manifest(&m, "/srv/vms/win11.qcow2");
  domain(&pd, "/srv/vms/win11.qcow2", NULL, uuid);
  struct restore_plan_in in = { .m = &m, .point_dom = &pd, .name = "w", .uuid = uuid,
                                .recorded = true };
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.disks[0].dir, "/srv/vms");
  assert_string_equal(p.disks[0].file, "win11.qcow2");
  assert_false(p.disks[0].replaces);
  restore_plan_free(&p);
  sp_domain_free(&pd);
  /* the manifest and the point's XML disagree: refused */
  domain(&pd, "/srv/vms/other.qcow2", NULL, uuid);
  assert_int_equal(restore_plan_make(&in, &p, &e), -1);
  assert_non_null(strstr(e.msg, "disagrees with itself"));
  restore_plan_free(&p);
  sp_domain_free(&pd);
  sp_manifest_free(&m);
  /* not a plain path */
  manifest(&m, "/srv/vms/../../etc/x");
  domain(&pd, "/srv/vms/../../etc/x", NULL, uuid);
  assert_int_equal(restore_plan_make(&in, &p, &e), -1);
  assert_non_null(strstr(e.msg, "not a plain absolute path"));
  restore_plan_free(&p);
  sp_domain_free(&pd);
  sp_manifest_free(&m);
}

/* --replace: the replaced definition's files and, keeping its UUID, its
 * TPM directory; a clone (another UUID) never the original's. */
static void replaced_definition(void **state)
{
  struct sp_manifest m;
  struct sp_domain pd, old;
  struct restore_plan p;
  struct sp_err e = { 0 };
  const char *uuid = "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10";
  manifest(&m, "/etc/passwd");
  domain(&pd, "/etc/passwd", "/etc", uuid);
  domain(&old, "/srv/live/w.qcow2", "/srv/tpm/w", uuid);
  struct restore_plan_in in = { .m = &m, .point_dom = &pd, .replaced = &old, .name = "w",
                                .uuid = uuid };
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.disks[0].dir, "/srv/live");
  assert_string_equal(p.disks[0].file, "w.qcow2");
  assert_true(p.disks[0].replaces);
  assert_string_equal(p.nvram_dir, "/srv/nv");
  assert_true(p.nvram_replaces);
  assert_string_equal(p.tpm_dir, "/srv/tpm/w");
  assert_true(p.tpm_source);
  restore_plan_free(&p);
  in.uuid = "0badc0de-0000-4000-8000-000000000001";
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.tpm_dir,
                      "/var/lib/libvirt/swtpm/0badc0de-0000-4000-8000-000000000001/tpm2");
  assert_false(p.tpm_source);
  restore_plan_free(&p);
  sp_domain_free(&pd);
  sp_domain_free(&old);
  sp_manifest_free(&m);
}

/* A kept chain is written as it is: a full-only copier's raw image stays
 * raw (and is named so); a flattened disk takes the VM disk's format. */
static void formats(void **state)
{
  struct sp_manifest m;
  struct sp_domain pd;
  struct restore_plan p;
  struct sp_err e = { 0 };
  const char *uuid = "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10";
  manifest(&m, "/srv/vms/w.qcow2");
  domain(&pd, "/srv/vms/w.qcow2", NULL, uuid);
  free(m.disks[0].image_format);
  m.disks[0].image_format = strdup("raw");
  struct restore_plan_in in = { .m = &m, .point_dom = &pd, .name = "w", .uuid = uuid,
                                .disks_to = "/srv/r", .keep_chain = true };
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.disks[0].format, "raw");
  assert_string_equal(p.disks[0].file, "sda.raw");
  restore_plan_free(&p);
  in.keep_chain = false;
  assert_int_equal(restore_plan_make(&in, &p, &e), 0);
  assert_string_equal(p.disks[0].format, "qcow2"); /* the VM's disk was qcow2 */
  restore_plan_free(&p);
  in.disks_to = "relative/dir";
  assert_int_equal(restore_plan_make(&in, &p, &e), -1);
  restore_plan_free(&p);
  sp_domain_free(&pd);
  sp_manifest_free(&m);
}

static void system_directories(void **state)
{
  assert_true(restore_path_system("/etc/cron.d/x"));
  assert_true(restore_path_system("/var/spool/cron/crontabs/root"));
  assert_true(restore_path_system("/root/x.qcow2"));
  assert_true(restore_path_system("/var/lib/libvirt/qemu/nvram/x"));
  assert_true(restore_path_system("/x.qcow2"));
  assert_false(restore_path_system("/etcetera/x.qcow2"));
  assert_false(restore_path_system("/var/lib/libvirt/images/x.qcow2"));
  assert_false(restore_path_system("/srv/vms/x.qcow2"));
}

/* Flattened by copying (one read, hashed as it passes) only what qemu-img
 * commit flattens exactly: qcow2 in and out, one virtual size throughout. */
static void flatten_by_copy(void **state)
{
  struct sp_chain_link links[3] = {
    { .format = "qcow2", .vsize = 4ull << 30 },
    { .format = "qcow2", .vsize = 4ull << 30 },
    { .format = "qcow2", .vsize = 4ull << 30 },
  };
  struct sp_disk_chain c = { .target = "vda", .links = links, .n = 3 };
  assert_true(restore_plan_flatten_by_copy(&c, "qcow2"));
  assert_false(restore_plan_flatten_by_copy(&c, "raw")); /* the VM's disk was raw */
  c.n = 1;
  assert_true(restore_plan_flatten_by_copy(&c, "qcow2")); /* a full point alone */
  c.n = 3;
  links[0].vsize = 8ull << 30; /* grown after the full: commit would grow the base */
  assert_false(restore_plan_flatten_by_copy(&c, "qcow2"));
  links[0].vsize = 2ull << 30; /* shrunk: commit would leave the base too large */
  assert_false(restore_plan_flatten_by_copy(&c, "qcow2"));
  links[0].vsize = 4ull << 30;
  links[2].format = "raw"; /* the raw full image of a full-only copier */
  assert_false(restore_plan_flatten_by_copy(&c, "qcow2"));
  c.n = 0;
  assert_false(restore_plan_flatten_by_copy(&c, "qcow2"));

  struct sp_manifest_disk d = { .format = "raw" };
  assert_string_equal(restore_plan_flat_format(&d), "raw");
  d.format = "qcow2";
  assert_string_equal(restore_plan_flat_format(&d), "qcow2");
  d.format = NULL;
  assert_string_equal(restore_plan_flat_format(&d), "qcow2");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(never_from_the_point),
    cmocka_unit_test(recorded_paths_when_asked),
    cmocka_unit_test(replaced_definition),
    cmocka_unit_test(formats),
    cmocka_unit_test(system_directories),
    cmocka_unit_test(flatten_by_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
