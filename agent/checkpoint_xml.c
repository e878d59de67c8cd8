#include "checkpoint_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#define XML_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

char *checkpoint_xml_for_redefine(const char *xml, size_t len,
                                  bool (*known)(const char *name, void *opaque), void *opaque)
{
  if (len > (size_t)__INT_MAX__)
    return NULL;
  xmlDocPtr doc = xmlReadMemory(xml, (int)len, "checkpoint.xml", NULL, XML_OPTS);
  if (!doc)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement(doc);
  for (xmlNodePtr n = root ? root->children : NULL; n; n = n->next) {
    if (n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, (const xmlChar *)"parent"))
      continue;
    xmlChar *pname = NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
      if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)"name")) {
        xmlFree(pname);
        pname = xmlNodeGetContent(c);
      }
    bool is_known = pname && known((const char *)pname, opaque);
    xmlFree(pname);
    if (!is_known) {
      xmlUnlinkNode(n);
      xmlFreeNode(n);
    }
    break;
  }
  xmlChar *out = NULL;
  int outlen = 0;
  xmlDocDumpMemory(doc, &out, &outlen);
  xmlFreeDoc(doc);
  char *r = out ? strndup((const char *)out, (size_t)outlen) : NULL;
  xmlFree(out);
  return r;
}

bool checkpoint_xml_bitmaps_present(const char *xml, char **missing)
{
  *missing = NULL;
  xmlDocPtr doc = xmlReadMemory(xml, (int)strnlen(xml, __INT_MAX__), "checkpoint.xml", NULL,
                                XML_OPTS);
  xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
  bool ok = true;
  for (xmlNodePtr d = root ? root->children : NULL; d && ok; d = d->next) {
    if (d->type != XML_ELEMENT_NODE || !xmlStrEqual(d->name, (const xmlChar *)"disks"))
      continue;
    for (xmlNodePtr k = d->children; k && ok; k = k->next) {
      if (k->type != XML_ELEMENT_NODE)
        continue;
      xmlChar *kind = xmlGetProp(k, (const xmlChar *)"checkpoint");
      xmlChar *size = xmlGetProp(k, (const xmlChar *)"size");
      if (kind && xmlStrEqual(kind, (const xmlChar *)"bitmap") && !size) {
        xmlChar *name = xmlGetProp(k, (const xmlChar *)"name");
        *missing = name ? strdup((const char *)name) : NULL;
        xmlFree(name);
        ok = false;
      }
      xmlFree(kind);
      xmlFree(size);
    }
  }
  if (doc)
    xmlFreeDoc(doc);
  return ok;
}
