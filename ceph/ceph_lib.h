/* librados and librbd, loaded when a Ceph pool is first reached, not when
 * a program starts.  Linked, they cost every run of stillpoint and of
 * stillpoint-copy about 50 ms of start-up (libceph-common and its C++
 * dependencies: docs/facts.md, "Timings"), paid three times and more by
 * a backup that never touches Ceph: the coordinator, its guardian and
 * each copier.  And a host without Ceph needs no Ceph libraries at all.
 *
 * Every source that calls librados or librbd includes this header and
 * never theirs: each function it uses is a name below, which reads the
 * function from the loaded library.  A function missing from the list
 * fails the link (the libraries are not linked), never the run. */
#ifndef SP_CEPH_LIB_H
#define SP_CEPH_LIB_H

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "err.h"

#define SP_CEPH_RADOS_FNS(X) \
  X(rados_break_lock) \
  X(rados_conf_get) \
  X(rados_conf_read_file) \
  X(rados_conf_set) \
  X(rados_connect) \
  X(rados_create) \
  X(rados_create_read_op) \
  X(rados_create_write_op) \
  X(rados_ioctx_create) \
  X(rados_ioctx_destroy) \
  X(rados_ioctx_set_namespace) \
  X(rados_list_lockers) \
  X(rados_lock_exclusive) \
  X(rados_omap_get_end) \
  X(rados_omap_get_next2) \
  X(rados_read) \
  X(rados_read_op_omap_get_vals2) \
  X(rados_read_op_omap_get_vals_by_keys2) \
  X(rados_read_op_operate) \
  X(rados_release_read_op) \
  X(rados_release_write_op) \
  X(rados_remove) \
  X(rados_setxattr) \
  X(rados_shutdown) \
  X(rados_stat) \
  X(rados_unlock) \
  X(rados_write_full) \
  X(rados_write_op_cmpxattr) \
  X(rados_write_op_omap_rm_keys2) \
  X(rados_write_op_omap_rm_range2) \
  X(rados_write_op_omap_set2) \
  X(rados_write_op_operate2)

#define SP_CEPH_RBD_FNS(X) \
  X(rbd_aio_create_completion) \
  X(rbd_aio_get_arg) \
  X(rbd_aio_get_return_value) \
  X(rbd_aio_release) \
  X(rbd_aio_write) \
  X(rbd_aio_write_zeroes) \
  X(rbd_clone3) \
  X(rbd_close) \
  X(rbd_create2) \
  X(rbd_flush) \
  X(rbd_get_size) \
  X(rbd_image_options_create) \
  X(rbd_image_options_destroy) \
  X(rbd_image_options_set_uint64) \
  X(rbd_linked_image_spec_list_cleanup) \
  X(rbd_list_descendants) \
  X(rbd_open) \
  X(rbd_open_read_only) \
  X(rbd_poll_io_events) \
  X(rbd_remove) \
  X(rbd_set_image_notification) \
  X(rbd_snap_create2) \
  X(rbd_snap_exists) \
  X(rbd_snap_get_namespace_type) \
  X(rbd_snap_list) \
  X(rbd_snap_list_end) \
  X(rbd_snap_remove)

struct sp_ceph_lib {
#define SP_CEPH_LIB_FIELD(f) __typeof__(f) *f;
  SP_CEPH_RADOS_FNS(SP_CEPH_LIB_FIELD)
  SP_CEPH_RBD_FNS(SP_CEPH_LIB_FIELD)
#undef SP_CEPH_LIB_FIELD
};

/* Loads both libraries once per process (thread-safe); -1 with a message
 * that says what to install when they are missing.  Every path to Ceph
 * starts with it (sp_ceph_connect). */
int sp_ceph_lib_load(struct sp_err *e);
/* The loaded functions; aborts when sp_ceph_lib_load has not succeeded,
 * a path to Ceph that skipped it. */
const struct sp_ceph_lib *sp_ceph_lib(void);

/* ceph_lib.c fills the table under the functions' own names. */
#ifndef SP_CEPH_LIB_TABLE
#define rados_break_lock (sp_ceph_lib()->rados_break_lock)
#define rados_conf_get (sp_ceph_lib()->rados_conf_get)
#define rados_conf_read_file (sp_ceph_lib()->rados_conf_read_file)
#define rados_conf_set (sp_ceph_lib()->rados_conf_set)
#define rados_connect (sp_ceph_lib()->rados_connect)
#define rados_create (sp_ceph_lib()->rados_create)
#define rados_create_read_op (sp_ceph_lib()->rados_create_read_op)
#define rados_create_write_op (sp_ceph_lib()->rados_create_write_op)
#define rados_ioctx_create (sp_ceph_lib()->rados_ioctx_create)
#define rados_ioctx_destroy (sp_ceph_lib()->rados_ioctx_destroy)
#define rados_ioctx_set_namespace (sp_ceph_lib()->rados_ioctx_set_namespace)
#define rados_list_lockers (sp_ceph_lib()->rados_list_lockers)
#define rados_lock_exclusive (sp_ceph_lib()->rados_lock_exclusive)
#define rados_omap_get_end (sp_ceph_lib()->rados_omap_get_end)
#define rados_omap_get_next2 (sp_ceph_lib()->rados_omap_get_next2)
#define rados_read (sp_ceph_lib()->rados_read)
#define rados_read_op_omap_get_vals2 (sp_ceph_lib()->rados_read_op_omap_get_vals2)
#define rados_read_op_omap_get_vals_by_keys2 (sp_ceph_lib()->rados_read_op_omap_get_vals_by_keys2)
#define rados_read_op_operate (sp_ceph_lib()->rados_read_op_operate)
#define rados_release_read_op (sp_ceph_lib()->rados_release_read_op)
#define rados_release_write_op (sp_ceph_lib()->rados_release_write_op)
#define rados_remove (sp_ceph_lib()->rados_remove)
#define rados_setxattr (sp_ceph_lib()->rados_setxattr)
#define rados_shutdown (sp_ceph_lib()->rados_shutdown)
#define rados_stat (sp_ceph_lib()->rados_stat)
#define rados_unlock (sp_ceph_lib()->rados_unlock)
#define rados_write_full (sp_ceph_lib()->rados_write_full)
#define rados_write_op_cmpxattr (sp_ceph_lib()->rados_write_op_cmpxattr)
#define rados_write_op_omap_rm_keys2 (sp_ceph_lib()->rados_write_op_omap_rm_keys2)
#define rados_write_op_omap_rm_range2 (sp_ceph_lib()->rados_write_op_omap_rm_range2)
#define rados_write_op_omap_set2 (sp_ceph_lib()->rados_write_op_omap_set2)
#define rados_write_op_operate2 (sp_ceph_lib()->rados_write_op_operate2)
#define rbd_aio_create_completion (sp_ceph_lib()->rbd_aio_create_completion)
#define rbd_aio_get_arg (sp_ceph_lib()->rbd_aio_get_arg)
#define rbd_aio_get_return_value (sp_ceph_lib()->rbd_aio_get_return_value)
#define rbd_aio_release (sp_ceph_lib()->rbd_aio_release)
#define rbd_aio_write (sp_ceph_lib()->rbd_aio_write)
#define rbd_aio_write_zeroes (sp_ceph_lib()->rbd_aio_write_zeroes)
#define rbd_clone3 (sp_ceph_lib()->rbd_clone3)
#define rbd_close (sp_ceph_lib()->rbd_close)
#define rbd_create2 (sp_ceph_lib()->rbd_create2)
#define rbd_flush (sp_ceph_lib()->rbd_flush)
#define rbd_get_size (sp_ceph_lib()->rbd_get_size)
#define rbd_image_options_create (sp_ceph_lib()->rbd_image_options_create)
#define rbd_image_options_destroy (sp_ceph_lib()->rbd_image_options_destroy)
#define rbd_image_options_set_uint64 (sp_ceph_lib()->rbd_image_options_set_uint64)
#define rbd_linked_image_spec_list_cleanup (sp_ceph_lib()->rbd_linked_image_spec_list_cleanup)
#define rbd_list_descendants (sp_ceph_lib()->rbd_list_descendants)
#define rbd_open (sp_ceph_lib()->rbd_open)
#define rbd_open_read_only (sp_ceph_lib()->rbd_open_read_only)
#define rbd_poll_io_events (sp_ceph_lib()->rbd_poll_io_events)
#define rbd_remove (sp_ceph_lib()->rbd_remove)
#define rbd_set_image_notification (sp_ceph_lib()->rbd_set_image_notification)
#define rbd_snap_create2 (sp_ceph_lib()->rbd_snap_create2)
#define rbd_snap_exists (sp_ceph_lib()->rbd_snap_exists)
#define rbd_snap_get_namespace_type (sp_ceph_lib()->rbd_snap_get_namespace_type)
#define rbd_snap_list (sp_ceph_lib()->rbd_snap_list)
#define rbd_snap_list_end (sp_ceph_lib()->rbd_snap_list_end)
#define rbd_snap_remove (sp_ceph_lib()->rbd_snap_remove)
#endif

#endif
