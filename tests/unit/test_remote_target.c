/* qemu+ssh URIs to the SSH target (agent/remote_target.c): what reaches
 * ssh's argv must be a plain user and host. */
#include "unit.h"

#include "remote_target.h"

static void parses(void **state)
{
  struct remote_target t;
  struct sp_err e = { 0 };
  assert_int_equal(remote_target_parse("qemu+ssh://root@hv2.example.org:2222/system", NULL, &t, &e),
                   0);
  assert_true(t.remote);
  assert_string_equal(t.user, "root");
  assert_string_equal(t.host, "hv2.example.org");
  assert_int_equal(t.port, 2222);
  assert_string_equal(t.keyfile, "");
  assert_int_equal(remote_target_parse("qemu+ssh://hv2/system?keyfile=/k/id&no_tty=1", "/other", &t,
                                    &e), 0);
  assert_string_equal(t.host, "hv2");
  assert_string_equal(t.user, "");
  assert_int_equal(t.port, 0);
  assert_string_equal(t.keyfile, "/k/id");
  assert_int_equal(remote_target_parse("qemu+ssh://[::1]:22/system", "/key", &t, &e), 0);
  assert_string_equal(t.host, "[::1]");
  assert_int_equal(t.port, 22);
  assert_string_equal(t.keyfile, "/key");
  assert_int_equal(remote_target_parse("qemu+libssh://u@h/system", NULL, &t, &e), 0);
  assert_true(t.remote);
}

static void local_is_not_remote(void **state)
{
  struct remote_target t;
  struct sp_err e = { 0 };
  const char *local[] = { NULL, "qemu:///system", "qemu+unix:///system", "test:///default",
                          "qemu+ssh:///system", "qemu+tcp://h/system" };
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
    assert_int_equal(remote_target_parse(local[i], NULL, &t, &e), 0);
    assert_false(t.remote);
  }
}

static void refuses_what_ssh_could_misread(void **state)
{
  struct remote_target t;
  struct sp_err e = { 0 };
  const char *bad[] = { "qemu+ssh://-oProxyCommand=x/system", "qemu+ssh://a;b/system",
                        "qemu+ssh://u$(id)@h/system", "qemu+ssh://h:99999/system",
                        "qemu+ssh://h:22x/system", "qemu+ssh://-l@h/system" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sp_err_clear(&e);
    assert_int_equal(remote_target_parse(bad[i], NULL, &t, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
  }
}

static void libvirt_uri_gets_the_key(void **state)
{
  struct remote_target t;
  struct sp_err e = { 0 };
  assert_int_equal(remote_target_parse("qemu+ssh://h/system", "/k", &t, &e), 0);
  char *u = remote_target_libvirt_uri("qemu+ssh://h/system", &t);
  assert_string_equal(u, "qemu+ssh://h/system?keyfile=/k");
  free(u);
  u = remote_target_libvirt_uri("qemu+ssh://h/system?no_tty=1", &t);
  assert_string_equal(u, "qemu+ssh://h/system?no_tty=1&keyfile=/k");
  free(u);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(parses),
    cmocka_unit_test(local_is_not_remote),
    cmocka_unit_test(refuses_what_ssh_could_misread),
    cmocka_unit_test(libvirt_uri_gets_the_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
