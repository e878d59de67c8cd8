/* The backing file name an incremental overlay records for its parent.
 *
 * It is relative to the overlay's directory, so a point stays valid when
 * the coordinator renames <id>.partial to <id>, and when the whole backup
 * target is moved or mounted elsewhere: <point>/disks/vda.qcow2 names its
 * parent ../../<parent-id>/disks/vda.qcow2. */
#ifndef SP_COPY_BACKING_PATH_H
#define SP_COPY_BACKING_PATH_H

/* The path of file `to` relative to directory `from_dir`.  Both must be
 * absolute and canonical (realpath: no symlinks, "." or ".."); repeated
 * and trailing slashes are tolerated.  Returns a malloc'd string, or NULL
 * with errno EINVAL (not absolute, or `to` is a directory prefix of
 * from_dir). */
char *sp_backing_relpath(const char *from_dir, const char *to);

#endif
