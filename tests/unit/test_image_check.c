/* Our own reading of a qcow2 header, before qemu-img sees an image
 * (agent/image_check.c).  The images in tests/data/images were made by
 * qemu-img with 512-byte clusters; data-file.qcow2 names a file that does
 * not exist (made with a scratch data file, the name then patched). */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "image_check.h"

#define PARENT "../../20261126T063000Z-full/disks/vda.qcow2"

static int open_image(const char *name)
{
  char p[512];
  snprintf(p, sizeof p, "%s/images/%s", TEST_DATA_DIR, name);
  int fd = open(p, O_RDONLY);
  assert_true(fd >= 0);
  return fd;
}

static int check(const char *name, const char *format, const char *backing, struct sp_err *e)
{
  int fd = open_image(name);
  uint64_t size = 0;
  int rc = sp_image_check_fd(fd, name, format, backing, &size, e);
  close(fd);
  if (rc == 0 && strcmp(format, "qcow2") == 0)
    assert_int_equal(size, 1 << 20);
  return rc;
}

static void real_images(void **state)
{
  struct sp_err e = { 0 };
  if (check("full.qcow2", "qcow2", NULL, &e) < 0)
    fail_msg("%s", e.msg);
  if (check("overlay.qcow2", "qcow2", PARENT, &e) < 0)
    fail_msg("%s", e.msg);
  if (check("overlay-v2.qcow2", "qcow2", PARENT, &e) < 0)
    fail_msg("%s", e.msg);
  /* a full that has a backing file, an overlay of another parent */
  assert_int_equal(check("overlay.qcow2", "qcow2", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "a full image, yet its header names a backing file"));
  assert_int_equal(check("overlay.qcow2", "qcow2", "../../x/disks/vda.qcow2", &e), -1);
  assert_int_equal(check("full.qcow2", "qcow2", PARENT, &e), -1);
  assert_non_null(strstr(e.msg, "its backing file is (none)"));
  assert_int_equal(check("foreign-backing.qcow2", "qcow2", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "/etc/hostname"));
  assert_int_equal(check("foreign-backing.qcow2", "qcow2", "/etc/hostname", &e), -1);
  assert_non_null(strstr(e.msg, "said to be raw"));
  assert_int_equal(check("data-file.qcow2", "qcow2", NULL, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_non_null(strstr(e.msg, "external data file (/nonexistent/stillpoint-d)"));
  assert_int_equal(check("aes.qcow2", "qcow2", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "encrypted"));
  /* a raw image is data, whatever its first bytes say: a guest may have
   * written a qcow2 header at LBA 0 */
  assert_int_equal(check("data-file.qcow2", "raw", NULL, &e), 0);
  assert_int_equal(check("data-file.qcow2", "raw", PARENT, &e), -1);
  assert_int_equal(check("full.qcow2", "vmdk", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "not one stillpoint writes"));
}

static void be32_put(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void be64_put(unsigned char *p, uint64_t v)
{
  be32_put(p, (uint32_t)(v >> 32));
  be32_put(p + 4, (uint32_t)v);
}

/* A version 3 header with 512-byte clusters and no extension. */
static void minimal(unsigned char b[512])
{
  memset(b, 0, 512);
  be32_put(b, 0x514649fb);
  be32_put(b + 4, 3);
  be32_put(b + 20, 9);
  be64_put(b + 24, 1 << 20);
  be32_put(b + 100, 112);
}

static void crafted_headers(void **state)
{
  unsigned char b[512];
  struct sp_qcow2_header h;
  struct sp_err e = { 0 };
  minimal(b);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&h, "x", NULL, &e), 0);
  assert_int_equal(sp_qcow2_header_parse(b, 50, &h, &e), -1);
  assert_int_equal(sp_qcow2_header_parse(b, 100, &h, &e), -1);
  /* the external data file bit alone, unknown and corrupt bits */
  be64_put(b + 72, 1 << 2);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&h, "x", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "external data file"));
  be64_put(b + 72, 1 << 9);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&h, "x", NULL, &e), -1);
  assert_non_null(strstr(e.msg, "0x200"));
  be64_put(b + 72, 1 << 1);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&h, "x", NULL, &e), -1);
  be64_put(b + 72, 0);
  /* a backing name outside the first cluster, too long, with a NUL, or
   * overlapping the extensions */
  be64_put(b + 8, 500);
  be32_put(b + 16, 20);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  be64_put(b + 8, 120);
  be32_put(b + 16, 1024);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  be32_put(b + 16, 4);
  memcpy(b + 120, "a\0bc", 4);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  memcpy(b + 120, "abcd", 4);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_string_equal(h.backing, "abcd");
  be64_put(b + 8, 112);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  be64_put(b + 8, 0);
  be32_put(b + 16, 0);
  /* an extension whose length runs past the cluster, a data file name */
  be32_put(b + 112, 0x44415441);
  be32_put(b + 116, 1000);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  be32_put(b + 116, 11);
  memcpy(b + 120, "/dev/sda123", 11);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), 0);
  assert_true(h.data_file);
  assert_string_equal(h.data_file_name, "/dev/sda123");
  /* no end marker before the cluster ends */
  memset(b + 112, 0xee, 400);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  /* cluster bits, version, magic */
  minimal(b);
  be32_put(b + 20, 40);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  minimal(b);
  be32_put(b + 4, 4);
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  b[0] = 'X';
  assert_int_equal(sp_qcow2_header_parse(b, sizeof b, &h, &e), -1);
  assert_non_null(strstr(e.msg, "not a qcow2 image"));
}

static void json_names_every_layer(void **state)
{
  const struct sp_image_layer l[] = { { "qcow2", 3 }, { "qcow2", 4 }, { "raw", 5 } };
  char *j = sp_image_json(l, 3);
  assert_string_equal(j, "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":"
                         "\"/proc/self/fd/3\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{"
                         "\"driver\":\"file\",\"filename\":\"/proc/self/fd/4\"},\"backing\":{"
                         "\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":"
                         "\"/proc/self/fd/5\"}}}}");
  free(j);
  j = sp_image_json(l, 1);
  assert_non_null(strstr(j, "\"backing\":null}"));
  free(j);
  const struct sp_image_layer bad[] = { { "raw", 3 }, { "qcow2", 4 } };
  assert_null(sp_image_json(bad, 2));
  const struct sp_image_layer vmdk[] = { { "vmdk", 3 } };
  assert_null(sp_image_json(vmdk, 1));
  assert_null(sp_image_json(l, 0));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(real_images),
    cmocka_unit_test(crafted_headers),
    cmocka_unit_test(json_names_every_layer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
