/* A libvirt checkpoint's XML, read and rewritten without libvirt: what a
 * redefinition needs and whether QEMU still has the bitmaps.  level_plan.c asks
 * libvirt and acts; tests/unit/test_checkpoint_xml.c proves the rules. */
#ifndef SP_CHECKPOINT_XML_H
#define SP_CHECKPOINT_XML_H

#include <stdbool.h>
#include <stddef.h>

/* The saved checkpoint XML without its <parent> when known(parent name)
 * says libvirt does not know that parent any more: redefinition refuses an
 * unknown parent, and the bitmap of this checkpoint is all an incremental
 * from it needs.  malloc'd; NULL when the XML does not parse (or libxml2 runs out of memory). */
char *checkpoint_xml_for_redefine(const char *xml, size_t len,
                                  bool (*known)(const char *name, void *opaque), void *opaque);

/* Whether every bitmap disk of the checkpoint's XML (as libvirt gives it
 * with VIR_DOMAIN_CHECKPOINT_XML_SIZE) has a size: libvirt reports one
 * only when QEMU has the bitmap.  A checkpoint whose bitmap was removed
 * outside libvirt (or redefined after a real delete) has none, and a job
 * from it would fail inside the pause.  *missing (malloc'd) names the
 * first disk without one.  XML that does not parse counts as present:
 * backupBegin decides then. */
bool checkpoint_xml_bitmaps_present(const char *xml, char **missing);

#endif
