/* The domain XML of an instant restore (agent/instant_xml.c): a disk on
 * its overlay backed by the point's NBD export, then on its final image
 * with nothing below it; the overlay's name and back. */
#include "unit.h"

#include "domain_xml.h"
#include "instant_xml.h"

static const char xml[] =
  "<domain type='qemu'><name>n</name><devices>"
  "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
  "<source file='/d/vda.qcow2'/><backingStore type='file'><format type='qcow2'/>"
  "<source file='/old'/></backingStore><target dev='vda' bus='virtio'/></disk>"
  "<disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vdb'/></disk>"
  "</devices></domain>";

static void overlay_then_final(void **state)
{
  struct sp_err e = { 0 };
  struct instant_xml_disk d = { "vda", "/d/vda.qcow2.overlay", "qcow2",
                                "/run/stillpoint/instant/u/vda.sock", NULL };
  char *out = NULL;
  assert_int_equal(instant_xml_disks(xml, strlen(xml), &d, 1, &out, &e), 0);
  assert_non_null(strstr(out, "<source file=\"/d/vda.qcow2.overlay\"/><backingStore "
                              "type=\"network\"><format type=\"raw\"/><source protocol=\"nbd\">"
                              "<host transport=\"unix\" socket=\"/run/stillpoint/instant/u/"
                              "vda.sock\"/></source><backingStore/></backingStore>"));
  assert_null(strstr(out, "/old"));
  assert_non_null(strstr(out, "/dev/sdz")); /* other disks as they were */
  struct sp_domain dom = { 0 };
  assert_int_equal(sp_domain_parse(out, strlen(out), &dom, &e), 0);
  assert_string_equal(sp_domain_disk(&dom, "vda")->source, "/d/vda.qcow2.overlay");
  sp_domain_free(&dom);

  struct instant_xml_disk f = { "vda", "/d/vda.raw", "raw", NULL, NULL };
  char *fin = NULL;
  assert_int_equal(instant_xml_disks(out, strlen(out), &f, 1, &fin, &e), 0);
  assert_null(strstr(fin, "backingStore"));
  assert_null(strstr(fin, "overlay"));
  assert_non_null(strstr(fin, "<driver name=\"qemu\" type=\"raw\"/><source file=\"/d/vda.raw\"/>"));
  free(out);
  free(fin);
}

/* A Ceph point's clone: a network disk libvirt can say, no file left. */
static void rbd_clone_disk(void **state)
{
  struct sp_err e = { 0 };
  const struct instant_xml_host hosts[] = { { "127.0.0.1", 40123 }, { "mon-b", 0 } };
  const struct instant_xml_rbd rbd = { "sp", "stillpoint", "8f1c2d3e-0000-4000-8000-000000000001",
                                       hosts, 2 };
  struct instant_xml_disk d = { "vda", "stillpoint-instant.u.vda", "raw", NULL, &rbd };
  char *out = NULL;
  assert_int_equal(instant_xml_disks(xml, strlen(xml), &d, 1, &out, &e), 0);
  assert_non_null(strstr(out, "<disk type=\"network\" device=\"disk\"><driver name=\"qemu\" "
                              "type=\"raw\"/><auth username=\"stillpoint\"><secret type=\"ceph\" "
                              "uuid=\"8f1c2d3e-0000-4000-8000-000000000001\"/></auth><source "
                              "protocol=\"rbd\" name=\"sp/stillpoint-instant.u.vda\"><host "
                              "name=\"127.0.0.1\" port=\"40123\"/><host name=\"mon-b\"/></source>"));
  assert_null(strstr(out, "/d/vda.qcow2"));
  assert_null(strstr(out, "backingStore"));
  assert_non_null(strstr(out, "/dev/sdz"));
  free(out);
}

static void unknown_target(void **state)
{
  struct sp_err e = { 0 };
  struct instant_xml_disk d = { "sdq", "/d/x", "qcow2", NULL, NULL };
  char *out = NULL;
  assert_int_equal(instant_xml_disks(xml, strlen(xml), &d, 1, &out, &e), -1);
  assert_null(out);
  assert_non_null(strstr(e.msg, "no disk sdq"));
  assert_int_equal(instant_xml_disks("<x/>", 4, &d, 1, &out, &e), -1);
}

static void names(void **state)
{
  char *o = instant_overlay_name("vda.qcow2");
  assert_string_equal(o, "vda.qcow2.overlay");
  char *f = instant_final_name(o);
  assert_string_equal(f, "vda.qcow2");
  assert_null(instant_final_name("vda.qcow2"));
  assert_null(instant_final_name(".overlay"));
  free(o);
  free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(overlay_then_final),
    cmocka_unit_test(rbd_clone_disk),
    cmocka_unit_test(unknown_target),
    cmocka_unit_test(names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
