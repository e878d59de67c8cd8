/* What QEMU needs to reach a cluster (ceph/ceph_access.c): monitors from
 * mon_host, a client's key from its keyring; strict on both. */
#include "unit.h"

#include "ceph_access.h"

static void mon_host_forms(void **state)
{
  (void)state;
  struct sp_ceph_mon m[SP_CEPH_MONS_MAX];
  size_t n;
  struct sp_err e = { 0 };
  assert_int_equal(sp_ceph_mon_host_parse("[v2:127.0.0.1:40123,v1:127.0.0.1:40124]", m,
                                          SP_CEPH_MONS_MAX, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_string_equal(m[0].host, "127.0.0.1");
  assert_int_equal(m[0].port, 40123);
  /* v1 first in the vector: still the v2 address */
  assert_int_equal(sp_ceph_mon_host_parse("[v1:10.0.0.1:6789,v2:10.0.0.1:3300], mon-b.example,"
                                          " 10.0.0.3:6789;v1:10.0.0.4:6790", m,
                                          SP_CEPH_MONS_MAX, &n, &e), 0);
  assert_int_equal(n, 4);
  assert_int_equal(m[0].port, 3300);
  assert_string_equal(m[1].host, "mon-b.example");
  assert_int_equal(m[1].port, 0);
  assert_string_equal(m[2].host, "10.0.0.3");
  assert_int_equal(m[2].port, 6789);
  assert_string_equal(m[3].host, "10.0.0.4");
  assert_int_equal(m[3].port, 6790);
  assert_int_equal(sp_ceph_mon_host_parse("[v1:10.0.0.1:6789]", m, 4, &n, &e), 0);
  assert_int_equal(m[0].port, 6789);
}

static void mon_host_refused(void **state)
{
  (void)state;
  struct sp_ceph_mon m[2];
  size_t n;
  const char *bad[] = { "", " , ", "[v2:127.0.0.1:3300", "[]", "[::1]:6789", "v2:[::1]:3300",
                        "fe80::1", "host:0", "host:65536", "host:12a", "host:", "-host",
                        "ho/st", "[v2:1.2.3.4:3300]x", "a'b", "h<x>", "a b c" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct sp_err e = { 0 };
    assert_int_equal(sp_ceph_mon_host_parse(bad[i], m, 2, &n, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
    assert_true(e.msg[0]);
  }
}

static const char keyring[] =
  "# a comment\n"
  "[client.admin]\n"
  "\tkey = AQAAAAAAAAAAEAAAQUJDREVGR0hJSktMTU5PUA==\n"
  "[client.stillpoint]\n"
  "\tkey = AQBBQUFBAAAAABAAMDEyMzQ1Njc4OWFiY2RlZg==\n"
  "\tcaps mon = \"profile rbd\"\n"
  "\tcaps osd = \"profile rbd pool=sp\"\n";

static void keyring_key(void **state)
{
  (void)state;
  unsigned char k[SP_CEPH_KEY_MAX];
  size_t n;
  struct sp_err e = { 0 };
  assert_int_equal(sp_ceph_keyring_key(keyring, strlen(keyring), "client.stillpoint", k, &n,
                                       &e), 0);
  assert_int_equal(n, 28);
  assert_memory_equal(k + 12, "0123456789abcdef", 16);
  assert_int_equal(sp_ceph_keyring_key(keyring, strlen(keyring), "client.admin", k, &n, &e), 0);
  assert_memory_equal(k + 12, "ABCDEFGHIJKLMNOP", 16);
  const char one[] = "[client.x]\nkey=YQ==\r\n";
  assert_int_equal(sp_ceph_keyring_key(one, strlen(one), "client.x", k, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_int_equal(k[0], 'a');
}

static void keyring_refused(void **state)
{
  (void)state;
  unsigned char k[SP_CEPH_KEY_MAX];
  size_t n;
  const char *bad[] = {
    "",                                            /* no section */
    "[client.other]\nkey = YQ==\n",                /* another client's */
    "[client.x]\ncaps mon = \"allow r\"\n",        /* no key */
    "[client.x]\nkey = YQ==\nkey = Yg==\n",        /* two keys */
    "[client.x]\nkey = YQ==\n[client.x]\nkey = YQ==\n", /* two sections */
    "[client.x\nkey = YQ==\n",                     /* broken section */
    "[client.x]\nkey YQ==\n",                      /* no '=' */
    "[client.x]\nkey = YQ=\n",                     /* bad length */
    "[client.x]\nkey = Y===\n",                    /* too much padding */
    "[client.x]\nkey = YQ=a\n",                    /* padding inside */
    "[client.x]\nkey = YQ==YQ==\n",                /* padding inside */
    "[client.x]\nkey = Y*Q=\n",                    /* not base64 */
    "[client.x]\nkey = \n",                        /* empty */
    "[client.xy]\nkey = YQ==\n",                   /* a longer name */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct sp_err e = { 0 };
    assert_int_equal(sp_ceph_keyring_key(bad[i], strlen(bad[i]), "client.x", k, &n, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
    assert_int_equal(n, 0);
  }
  char big[200] = "[client.x]\nkey = ";
  memset(big + strlen(big), 'A', 100);
  struct sp_err e = { 0 };
  assert_int_equal(sp_ceph_keyring_key(big, strlen(big), "client.x", k, &n, &e), -1);
  const char nul[] = "[client.x]\nkey = YQ==\n\0";
  assert_int_equal(sp_ceph_keyring_key(nul, sizeof nul, "client.x", k, &n, &e), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(mon_host_forms),
    cmocka_unit_test(mon_host_refused),
    cmocka_unit_test(keyring_key),
    cmocka_unit_test(keyring_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
