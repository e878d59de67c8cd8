/* Small libxml2 tree walks shared by the XML rewriters (xml_tree.h). */
#include <stdbool.h>

#include "xml_tree.h"

static bool is_element(xmlNodePtr c, const char *name)
{
  return c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)name);
}

xmlNodePtr sp_xml_child(xmlNodePtr n, const char *name)
{
  for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
    if (is_element(c, name))
      return c;
  return NULL;
}

void sp_xml_remove_children(xmlNodePtr n, const char *name)
{
  for (xmlNodePtr c = n->children, next; c; c = next) {
    next = c->next;     /* read before c is freed */
    if (is_element(c, name)) {
      xmlUnlinkNode(c);
      xmlFreeNode(c);
    }
  }
}
