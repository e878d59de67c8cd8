/* Two small walks over a libxml2 tree that every XML rewriter here needs:
 * the first element child of a name, and removing all element children of
 * a name. Element names only; text, comments and namespaces are left as
 * they are, since the callers edit libvirt's own XML after it was parsed
 * and filtered. */
#ifndef SP_XML_TREE_H
#define SP_XML_TREE_H

#include <libxml/tree.h>

/* The first element child of n called name; NULL when n is NULL or has none. */
xmlNodePtr sp_xml_child(xmlNodePtr n, const char *name);

/* Unlinks and frees every element child of n called name. */
void sp_xml_remove_children(xmlNodePtr n, const char *name);

#endif
