/* A checkpoint's XML (agent/checkpoint_xml.c): redefinition drops a parent
 * libvirt no longer knows and keeps one it knows; a bitmap disk without a
 * size is a bitmap QEMU lost. */
#include "unit.h"

#include "checkpoint_xml.h"

static bool knows_a(const char *name, void *opaque)
{
  (*(int *)opaque)++;
  return strcmp(name, "a") == 0;
}

static const char saved[] =
  "<domaincheckpoint><name>b</name><parent><name>%s</name></parent>"
  "<disks><disk name='vda' checkpoint='bitmap' bitmap='b'/></disks></domaincheckpoint>";

static void redefine_parent(void **state)
{
  char xml[512];
  int asked = 0;
  snprintf(xml, sizeof xml, saved, "a");
  char *out = checkpoint_xml_for_redefine(xml, strlen(xml), knows_a, &asked);
  assert_non_null(out);
  assert_int_equal(asked, 1);
  assert_non_null(strstr(out, "<parent>"));
  assert_non_null(strstr(out, "checkpoint=\"bitmap\""));
  free(out);
  snprintf(xml, sizeof xml, saved, "gone");
  out = checkpoint_xml_for_redefine(xml, strlen(xml), knows_a, &asked);
  assert_non_null(out);
  assert_null(strstr(out, "<parent>"));
  assert_non_null(strstr(out, "<name>b</name>"));
  free(out);
  /* No parent at all: the XML as it was; nothing asked. */
  asked = 0;
  const char *root = "<domaincheckpoint><name>b</name></domaincheckpoint>";
  out = checkpoint_xml_for_redefine(root, strlen(root), knows_a, &asked);
  assert_non_null(strstr(out, "<name>b</name>"));
  assert_int_equal(asked, 0);
  free(out);
  /* A parent without a name is not known. */
  const char *noname = "<domaincheckpoint><name>b</name><parent/></domaincheckpoint>";
  out = checkpoint_xml_for_redefine(noname, strlen(noname), knows_a, &asked);
  assert_null(strstr(out, "<parent"));
  free(out);
  assert_null(checkpoint_xml_for_redefine("<unclosed", 9, knows_a, &asked));
}

static void bitmaps(void **state)
{
  char *missing = NULL;
  assert_true(checkpoint_xml_bitmaps_present(
    "<domaincheckpoint><disks><disk name='vda' checkpoint='bitmap' size='65536'/>"
    "<disk name='vdb' checkpoint='no'/></disks></domaincheckpoint>", &missing));
  assert_null(missing);
  assert_false(checkpoint_xml_bitmaps_present(
    "<domaincheckpoint><disks><disk name='vda' checkpoint='bitmap' size='1'/>"
    "<disk name='vdb' checkpoint='bitmap'/></disks></domaincheckpoint>", &missing));
  assert_string_equal(missing, "vdb");
  free(missing);
  /* Unparsable: cannot tell, backupBegin decides. */
  assert_true(checkpoint_xml_bitmaps_present("<oops", &missing));
  assert_null(missing);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(redefine_parent),
    cmocka_unit_test(bitmaps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
