#include "instant_xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cleanup_xml.h"
#include "xalloc.h"
#include "xml_tree.h"

#define OVERLAY_SUFFIX ".overlay"


static xmlNodePtr find_disk(xmlNodePtr devices, const char *target, int *count)
{
  xmlNodePtr found = NULL;
  *count = 0;
  for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, (const xmlChar *)"disk"))
      continue;
    xmlNodePtr t = sp_xml_child(c, "target");
    _cleanup_free_ char *dev = t ? (char *)xmlGetProp(t, (const xmlChar *)"dev") : NULL;
    if (dev && strcmp(dev, target) == 0) {
      found = c;
      (*count)++;
    }
  }
  return found;
}

/* <backingStore type='network'><format type='raw'/><source protocol='nbd'>
 * <host transport='unix' socket='S'/></source><backingStore/></backingStore>:
 * the export is the whole chain read as one raw disk, and the empty
 * backingStore tells libvirt there is nothing below it to look for. */
static int add_backing(xmlNodePtr after, const char *sock)
{
  xmlNodePtr b = xmlNewNode(NULL, (const xmlChar *)"backingStore");
  if (!b)
    return -1;
  xmlAddNextSibling(after, b);
  xmlNodePtr f = xmlNewChild(b, NULL, (const xmlChar *)"format", NULL);
  xmlNodePtr s = xmlNewChild(b, NULL, (const xmlChar *)"source", NULL);
  xmlNodePtr h = s ? xmlNewChild(s, NULL, (const xmlChar *)"host", NULL) : NULL;
  if (!f || !h || !xmlNewChild(b, NULL, (const xmlChar *)"backingStore", NULL))
    return -1;
  return xmlSetProp(b, (const xmlChar *)"type", (const xmlChar *)"network") &&
             xmlSetProp(f, (const xmlChar *)"type", (const xmlChar *)"raw") &&
             xmlSetProp(s, (const xmlChar *)"protocol", (const xmlChar *)"nbd") &&
             xmlSetProp(h, (const xmlChar *)"transport", (const xmlChar *)"unix") &&
             xmlSetProp(h, (const xmlChar *)"socket", (const xmlChar *)sock)
           ? 0 : -1;
}

/* <auth username='U'><secret type='ceph' uuid='S'/></auth> and
 * <source protocol='rbd' name='POOL/IMAGE'><host name= port=/>...</source>. */
static int rbd_source(xmlNodePtr disk, xmlNodePtr driver, const struct instant_xml_disk *d)
{
  const struct instant_xml_rbd *r = d->rbd;
  _cleanup_free_ char *name = NULL;
  if (asprintf(&name, "%s/%s", r->pool, d->source) < 0)
    return -1;
  xmlNodePtr auth = xmlNewNode(NULL, (const xmlChar *)"auth");
  xmlNodePtr src = xmlNewNode(NULL, (const xmlChar *)"source");
  if (!auth || !src)
    return xmlFreeNode(auth), xmlFreeNode(src), -1;
  xmlAddNextSibling(driver, src);
  xmlAddNextSibling(driver, auth);
  xmlNodePtr sec = xmlNewChild(auth, NULL, (const xmlChar *)"secret", NULL);
  if (!sec || !xmlSetProp(auth, (const xmlChar *)"username", (const xmlChar *)r->user) ||
      !xmlSetProp(sec, (const xmlChar *)"type", (const xmlChar *)"ceph") ||
      !xmlSetProp(sec, (const xmlChar *)"uuid", (const xmlChar *)r->secret_uuid) ||
      !xmlSetProp(src, (const xmlChar *)"protocol", (const xmlChar *)"rbd") ||
      !xmlSetProp(src, (const xmlChar *)"name", (const xmlChar *)name))
    return -1;
  for (size_t i = 0; i < r->nhosts; i++) {
    xmlNodePtr h = xmlNewChild(src, NULL, (const xmlChar *)"host", NULL);
    char port[16];
    snprintf(port, sizeof port, "%u", r->hosts[i].port);
    if (!h || !xmlSetProp(h, (const xmlChar *)"name", (const xmlChar *)r->hosts[i].name) ||
        (r->hosts[i].port && !xmlSetProp(h, (const xmlChar *)"port", (const xmlChar *)port)))
      return -1;
  }
  return 0;
}

static int rewrite(xmlNodePtr disk, const struct instant_xml_disk *d)
{
  xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)(d->rbd ? "network" : "file"));
  sp_xml_remove_children(disk, "source");
  sp_xml_remove_children(disk, "backingStore");
  sp_xml_remove_children(disk, "auth");
  xmlNodePtr driver = sp_xml_child(disk, "driver");
  if (!driver && !(driver = xmlNewChild(disk, NULL, (const xmlChar *)"driver", NULL)))
    return -1;
  xmlSetProp(driver, (const xmlChar *)"name", (const xmlChar *)"qemu");
  xmlSetProp(driver, (const xmlChar *)"type", (const xmlChar *)d->format);
  if (d->rbd)
    return rbd_source(disk, driver, d);
  xmlNodePtr src = xmlNewNode(NULL, (const xmlChar *)"source");
  if (!src || !xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)d->source))
    return xmlFreeNode(src), -1;
  xmlAddNextSibling(driver, src);
  return d->nbd_socket ? add_backing(src, d->nbd_socket) : 0;
}

int instant_xml_disks(const char *xml, size_t len, const struct instant_xml_disk *d, size_t n,
                      char **out, struct sp_err *e)
{
  *out = NULL;
  if (len > (16u << 20))
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML larger than 16 MiB");
  _cleanup_xml_doc_ xmlDocPtr doc =
    xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
  if (!root || !xmlStrEqual(root->name, (const xmlChar *)"domain"))
    return sp_err_set(e, SP_EXIT_FAILED, "the domain XML libvirt gave is not a domain");
  xmlNodePtr devices = sp_xml_child(root, "devices");
  for (size_t i = 0; i < n; i++) {
    int count;
    xmlNodePtr disk = find_disk(devices, d[i].target, &count);
    if (count != 1)
      return sp_err_set(e, SP_EXIT_FAILED, "the domain XML has %s disk %s",
                        count ? "more than one" : "no", d[i].target);
    if (rewrite(disk, &d[i]) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  }
  xmlChar *mem = NULL;
  int size = 0;
  xmlDocDumpMemory(doc, &mem, &size);
  if (!mem) /* libxml2's own allocation failed */
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  *out = sp_xstrndup((const char *)mem, (size_t)size);
  xmlFree(mem);
  return 0;
}

char *instant_overlay_name(const char *final)
{
  return sp_xasprintf("%s" OVERLAY_SUFFIX, final);
}

char *instant_final_name(const char *overlay)
{
  size_t n = strlen(overlay), s = strlen(OVERLAY_SUFFIX);
  if (n <= s || strcmp(overlay + n - s, OVERLAY_SUFFIX) != 0)
    return NULL;
  return strndup(overlay, n - s);
}
